from django import template

from ecolink.billing.models import MICROS_PER_DOLLAR

register = template.Library()


@register.filter
def dollars(micros: int | None) -> str:
    """Micro-dollars as `$12.34` (`-$0.50` for debts); exact integer arithmetic, no floats."""
    if micros is None:
        return ""
    sign = "-" if micros < 0 else ""
    cents = (abs(micros) + 5_000) // 10_000  # round half up to the cent for display
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


@register.filter
def dollars_precise(micros: int | None) -> str:
    """Micro-dollars with four decimals, for per-minute charges."""
    if micros is None:
        return ""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_DOLLAR)
    return f"{sign}${whole:,}.{frac // 100:04d}"

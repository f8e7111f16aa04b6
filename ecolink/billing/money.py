"""Money as people read it: micro-dollars formatted for pages and messages, with exact
integer arithmetic (no floats). The `money` template filters call these."""

from ecolink.billing.models import MICROS_PER_DOLLAR


def dollars(micros: int | None) -> str:
    """Micro-dollars as `$12.34` (`-$0.50` for debts), rounded half up to the cent."""
    if micros is None:
        return ""
    sign = "-" if micros < 0 else ""
    cents = (abs(micros) + 5_000) // 10_000
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def dollars_precise(micros: int | None) -> str:
    """Micro-dollars with four decimals, for per-minute charges."""
    if micros is None:
        return ""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_DOLLAR)
    return f"{sign}${whole:,}.{frac // 100:04d}"

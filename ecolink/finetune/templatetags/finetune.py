from django import template

from ecolink.finetune import labels

register = template.Library()

register.filter("method_label", labels.method_label)
register.filter("phase_label", labels.phase_label)


@register.filter
def gib(n_bytes: int) -> str:
    value = n_bytes / 1024**3
    return f"{value:.1f} GiB" if abs(value) >= 0.1 else f"{n_bytes / 1024**2:.1f} MiB"


@register.filter
def intcomma_params(count: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


@register.filter
def weights_gib(count: int, bytes_per_parameter: int) -> str:
    return gib(count * bytes_per_parameter)


@register.filter
def duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@register.filter
def split(value: str) -> list[str]:
    return value.split()


@register.filter
def field(form, name: str):
    return form[name]

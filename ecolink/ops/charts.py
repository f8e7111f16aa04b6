"""Small charts for the dashboard as inline SVG geometry, computed here and drawn by
templates/ops/_chart.html: no JavaScript, nothing to load."""

from dataclasses import dataclass, field

WIDTH = 480
HEIGHT = 120
LABEL_WIDTH = 150
ROW_HEIGHT = 18


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass
class Chart:
    title: str
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.rects


def columns(title: str, points: list[tuple[str, int, str]], *, every: int = 1) -> Chart:
    """One column per (label, value, shown value); every `every`-th label is written."""
    chart = Chart(title=title, width=WIDTH, height=HEIGHT + 16)
    if not points:
        return chart
    top = max(value for _, value, _ in points) or 1
    step = WIDTH / len(points)
    for i, (label, value, shown) in enumerate(points):
        h = HEIGHT * max(value, 0) / top
        chart.rects.append(
            Rect(i * step + 1, HEIGHT - h, max(step - 2, 1), h, "bar", f"{label}: {shown}")
        )
        if i % every == 0:
            chart.texts.append(Text(i * step + step / 2, HEIGHT + 12, label, "middle"))
    return chart


def bars(title: str, rows: list[tuple[str, list[tuple[int, str, str]]]]) -> Chart:
    """Horizontal bars, one per (label, [(value, css class, title) segments]), stacked."""
    chart = Chart(title=title, width=WIDTH, height=max(ROW_HEIGHT * len(rows), ROW_HEIGHT))
    top = max((sum(v for v, _, _ in segs) for _, segs in rows), default=0) or 1
    span = WIDTH - LABEL_WIDTH - 40
    for i, (label, segments) in enumerate(rows):
        y = i * ROW_HEIGHT
        chart.texts.append(Text(0, y + 13, label))
        x: float = LABEL_WIDTH
        for value, css, tip in segments:
            w = span * value / top
            if w > 0:
                chart.rects.append(Rect(x, y + 3, w, ROW_HEIGHT - 6, css, tip))
            x += w
        total = sum(v for v, _, _ in segments)
        chart.texts.append(Text(x + 4, y + 13, str(total)))
    return chart

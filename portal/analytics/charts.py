"""Column charts per day, laid out here and drawn by templates/analytics/_columns.html as SVG
with classes only (the CSP allows no inline style): each column a link, each segment a series.

The axis labels are HTML beside the SVG, not SVG text: the SVG scales with its box (to about half
at 390 px), and its text would scale with it (to about 6 px); HTML text keeps its CSS size. The
labels sit at three fixed heights (the top, the middle and the bottom of the plot), so CSS places
them with classes: static/portal.css `.chart-y .tick-*` holds the same percentages as TICK_CLASSES."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

WIDTH, HEIGHT = 600, 200
LEFT, RIGHT, TOP, BOTTOM = 2, 2, 8, 2
SERIES_CLASSES = 6
# The value ticks: the fraction of the axis -> the CSS class placing its label (top: 4%, 50%, 99%
# of the chart's height, as TOP and BOTTOM put the grid lines).
TICK_CLASSES = {0: "tick-0", 0.5: "tick-50", 1: "tick-100"}


@dataclass
class Segment:
    cls: str
    y: float
    height: float


@dataclass
class Column:
    day: date
    x: float
    width: float
    total: int
    label: str
    href: str | None
    values: dict[str, int] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Chart:
    label: str
    columns: list[Column]
    ticks: list[tuple[float, str, str]]  # (y, text, the class placing its label)
    x_labels: list[tuple[float, str]]
    series: list[tuple[str, str]]  # (name, class), for the legend
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    baseline: float = HEIGHT - BOTTOM

    @property
    def total(self) -> int:
        return sum(c.total for c in self.columns)


def nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 x 10^k at or above value (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _day(d: date) -> str:
    return d.strftime("%b %-d")


def columns(label: str, days: list[tuple[date, dict[str, int]]], series: list[str], *, unit: str = "event",
            href=None, classes: dict[str, str] | None = None) -> Chart:
    """`days` = [(day, {series name: value})]; `href(day, values)` gives each column's link."""
    classes = {name: f"series-{i % SERIES_CLASSES}" for i, name in enumerate(series)} | (classes or {})
    top = nice_max(max((sum(v.values()) for _, v in days), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.78, 1.0)
    cols = []
    for i, (day, values) in enumerate(days):
        total = sum(values.values())
        parts = ", ".join(f"{name} {values[name]:,}" for name in series if values.get(name)) if len(series) > 1 else ""
        text = f"{_day(day)}: {total:,} {unit}{'' if total == 1 else 's'}" + (f" ({parts})" if parts else "")
        col = Column(day, round(LEFT + i * slot + (slot - bar) / 2, 2), round(bar, 2), total, text,
                     href(day, values) if href else None, dict(values))
        y = HEIGHT - BOTTOM
        for name in series:
            v = values.get(name, 0)
            if v:
                h = v / top * plot_h
                y -= h
                col.segments.append(Segment(classes[name], round(y, 2), round(max(h, 0.5), 2)))
        cols.append(col)
    ticks = [(round(HEIGHT - BOTTOM - f * plot_h, 2), f"{int(top * f):,}", TICK_CLASSES[f]) for f in (0, 0.5, 1)
             if f == 0 or top * f == int(top * f)]
    picks = sorted({0, len(days) // 2, len(days) - 1}) if days else []
    x_labels = [(round(LEFT + i * slot + slot / 2, 2), _day(days[i][0])) for i in picks]
    return Chart(label, cols, ticks, x_labels, [(name, classes[name]) for name in series])

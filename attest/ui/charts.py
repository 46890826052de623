"""The dashboard's pictures as self-contained SVG strings: a step chart (bonds at stake over time), stacked bars
(events per kind per time bucket: outcomes, the disputer's decisions), a ROC curve and a calibration (reliability)
diagram. Pure functions of plain data (attest/ui/series.py shapes it); `disputer eval --plot` writes the last two.

Drawn here rather than by a plotting library: four small chart kinds are a few hundred lines of SVG, and owning
them keeps what the dashboard needs in our hands: no script in the output, a <title> and <desc> on every chart
(role="img"), every label escaped (claims, labels and judge names come from strangers), series told apart by dash
pattern as well as colour, text and marks at WCAG contrast on white, identical bytes for identical data (tests
read the geometry), and no dependency for a server that renders a handful of charts per page. matplotlib would
bring a large native dependency and emit unlabelled paths; client-side libraries would need JavaScript.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from attest.ui.series import Buckets, Series, area_under, calibration_error, reliability_bins, roc_points

TEXT = "#1a1a1a"  # 17:1 on white
AXIS = "#595959"  # 7:1 on white
GRID = "#e3e3e3"  # decoration only
# Okabe-Ito hues darkened where needed so each mark keeps 3:1 against white (WCAG 1.4.11).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#7B4F9E", "#8C6D1F", "#4D4D4D", "#B8006B", "#2F6B2F")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
MAX_LABEL = 48  # characters of a label drawn; the full label stays in its <title>
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_CHART_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Box:
    """The plot area inside the picture, in SVG user units."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


def text(value: object) -> str:
    """Any value as XML character data or an attribute value: characters XML cannot hold become U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", str(value)), {'"': "&quot;", "'": "&apos;"})


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def _num(value: float) -> str:
    """Coordinates with two decimals, no trailing zeros, so identical data gives identical bytes."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _fmt(value: float, step: float) -> str:
    """A tick label as precise as its step: 0.2, 250, 1,000."""
    places = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if step > 0 and round(step * 10**places) % 10 == 5 and step < 1:  # 0.25 steps need two places
        places += 1
    return f"{value:,.{places}f}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] in steps of 1, 2, 2.5 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, not {low} and {high}")
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(first + len(ticks) * step)
    return [round(t, 12) for t in ticks]


def _chart_id(kind: str, title: str, chart_id: str | None) -> str:
    if chart_id is None:
        return f"{kind}-{hashlib.sha256(title.encode('utf-8', 'replace')).hexdigest()[:10]}"
    if not _CHART_ID.fullmatch(chart_id):
        raise ValueError(f"a chart id is a letter then letters, digits, - or _, not {chart_id[:80]!r}")
    return chart_id


def _svg(cid: str, width: int, height: int, title: str, desc: str, body: Sequence[str]) -> str:
    """The outer element: an image for assistive technology, named by its title and described by its desc."""
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{cid}" class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{cid}-title {cid}-desc" '
            f'font-family="{text(FONT)}" font-size="12">',
            f'<title id="{cid}-title">{text(title)}</title>',
            f'<desc id="{cid}-desc">{text(desc)}</desc>',
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            f'<text x="12" y="22" font-size="15" font-weight="600" fill="{TEXT}">{text(_short(title))}</text>',
            *body,
            "</svg>",
        ]
    )


def _frame(box: Box, x_label: str, y_label: str) -> list[str]:
    """The plot area's outline (class plot-area: tests read the geometry from it) and the axis titles."""
    middle_y = box.top + box.height / 2
    return [
        f'<rect class="plot-area" x="{_num(box.left)}" y="{_num(box.top)}" width="{_num(box.width)}" '
        f'height="{_num(box.height)}" fill="none" stroke="{AXIS}"/>',
        f'<text x="{_num(box.left + box.width / 2)}" y="{_num(box.bottom + 38)}" text-anchor="middle" '
        f'fill="{TEXT}">{text(_short(x_label))}</text>',
        f'<text transform="translate(16 {_num(middle_y)}) rotate(-90)" text-anchor="middle" '
        f'fill="{TEXT}">{text(_short(y_label))}</text>',
    ]


def _y_axis(box: Box, ticks: Sequence[float], to_y: _Scale) -> list[str]:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    out: list[str] = []
    for t in ticks:
        y = _num(to_y(t))
        out.append(f'<line x1="{_num(box.left)}" x2="{_num(box.right)}" y1="{y}" y2="{y}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{_num(box.left - 6)}" y="{y}" dy="0.32em" text-anchor="end" fill="{TEXT}">{_fmt(t, step)}</text>'
        )
    return out


def _x_ticks(box: Box, labelled: Sequence[tuple[float, str]]) -> list[str]:
    out: list[str] = []
    for x, label in labelled:
        anchor = "end" if x >= box.right - 1 else "middle"  # the right margin is narrower than a label
        out.append(f'<line x1="{_num(x)}" x2="{_num(x)}" y1="{_num(box.bottom)}" y2="{_num(box.bottom + 4)}" '
                   f'stroke="{AXIS}"/>')  # fmt: skip
        out.append(
            f'<text x="{_num(x)}" y="{_num(box.bottom + 17)}" text-anchor="{anchor}" fill="{TEXT}">{text(label)}</text>'
        )
    return out


def _legend(entries: Sequence[tuple[str, str, str, str]], x: float, y: float, width: float) -> list[str]:
    """(label, colour, dash, mark) in a row wrapping at `width`; mark is "line" or "box"."""
    out: list[str] = ['<g class="legend">']
    cx, cy = x, y
    for label, colour, dash, mark in entries:
        shown = _short(label)
        span = 26 + 6.5 * len(shown) + 14
        if cx > x and cx + span > x + width:
            cx, cy = x, cy + 16
        if mark == "box":
            out.append(f'<rect x="{_num(cx)}" y="{_num(cy - 9)}" width="18" height="10" fill="{colour}"/>')
        else:
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{_num(cx)}" x2="{_num(cx + 18)}" y1="{_num(cy - 4)}" y2="{_num(cy - 4)}" '
                       f'stroke="{colour}" stroke-width="2.5"{dashed}/>')  # fmt: skip
        out.append(f'<text x="{_num(cx + 24)}" y="{_num(cy)}" fill="{TEXT}"><title>{text(label)}</title>'
                   f"{text(shown)}</text>")  # fmt: skip
        cx += span
    out.append("</g>")
    return out


class _Scale:
    """A linear map from data to SVG coordinates."""

    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        self.low, self.span, self.start, self.end = low, (high - low) or 1.0, start, end

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / self.span * (self.end - self.start)


def _seconds(when: datetime) -> float:
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).timestamp()


def _time_label(seconds: float, span_s: float) -> str:
    when = datetime.fromtimestamp(seconds, UTC)
    if span_s >= 2 * 86400:
        return when.strftime("%Y-%m-%d")
    if span_s >= 2 * 3600:
        return when.strftime("%m-%d %H:%M")
    return when.strftime("%H:%M:%S")


def _time_ticks(box: Box, low: float, high: float, to_x: _Scale, count: int = 5) -> list[str]:
    span = high - low
    return _x_ticks(box, [(to_x(low + span * i / count), _time_label(low + span * i / count, span))
                          for i in range(count + 1)])  # fmt: skip


def _empty(box: Box, what: str) -> str:
    return (f'<text x="{_num(box.left + box.width / 2)}" y="{_num(box.top + box.height / 2)}" text-anchor="middle" '
            f'fill="{TEXT}">{text(what)}</text>')  # fmt: skip


def _wide_box(width: int, height: int, legend_rows: int) -> Box:
    top = 40 + 16 * legend_rows + 8
    return Box(64, top, width - 64 - 20, height - top - 48)


def _legend_rows(labels: Sequence[str], width: float) -> int:
    rows, used = 1, 0.0
    for label in labels:
        span = 26 + 6.5 * len(_short(label)) + 14
        if used and used + span > width:
            rows, used = rows + 1, 0.0
        used += span
    return rows if labels else 0


def step_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    x_label: str = "time (UTC)",
    desc: str | None = None,
    width: int = 640,
    height: int = 320,
    chart_id: str | None = None,
) -> str:
    """Values over time, each held until its next point (bonds at stake): one line per series."""
    cid = _chart_id("step", title, chart_id)
    drawn = [s for s in series if s.points]
    box = _wide_box(width, height, _legend_rows([s.label for s in drawn], width - 76))
    summary = "; ".join(
        f"{s.label}: {len(s.points)} changes, peak {max(v for _, v in s.points):g}, latest {s.points[-1][1]:g} "
        f"at {s.points[-1][0].isoformat()}"
        for s in drawn
    )
    body = _frame(box, x_label, y_label)
    if not drawn:
        return _svg(cid, width, height, title, desc or "No data yet.", [*body, _empty(box, "no data yet")])
    times = [_seconds(t) for s in drawn for t, _ in s.points]
    low, high = min(times), max(times)
    if high - low < 60:
        low, high = low - 1800, high + 1800
    high += (high - low) * 0.05  # the last value is seen held, not only as a step at the edge
    values = [v for s in drawn for _, v in s.points]
    ticks = nice_ticks(min(0.0, *values), max(0.0, *values))
    to_x, to_y = _Scale(low, high, box.left, box.right), _Scale(ticks[0], ticks[-1], box.bottom, box.top)
    body += _y_axis(box, ticks, to_y) + _time_ticks(box, low, high, to_x)
    legend: list[tuple[str, str, str, str]] = []
    for i, s in enumerate(drawn):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        points = sorted(s.points, key=lambda p: _seconds(p[0]))
        d = [f"M{_num(to_x(_seconds(points[0][0])))} {_num(to_y(points[0][1]))}"]
        for when, value in points[1:]:
            d.append(f"H{_num(to_x(_seconds(when)))} V{_num(to_y(value))}")
        d.append(f"H{_num(box.right)}")
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<path class="series" d="{" ".join(d)}" fill="none" stroke="{colour}" stroke-width="2.5"'
                    f'{dashed}><title>{text(s.label)}: latest {points[-1][1]:g}</title></path>')  # fmt: skip
        legend.append((s.label, colour, dash, "line"))
    body += _legend(legend, 64, 44, width - 76)
    return _svg(cid, width, height, title, desc or summary, body)


def _bucket_label(start: datetime, width: timedelta) -> str:
    if width >= timedelta(days=1):
        return start.strftime("%Y-%m-%d")
    return start.strftime("%m-%d %H:%M")


def stacked_bar_chart(
    buckets: Buckets,
    *,
    title: str,
    y_label: str = "count",
    x_label: str = "time (UTC)",
    desc: str | None = None,
    width: int = 640,
    height: int = 320,
    chart_id: str | None = None,
) -> str:
    """Counts per kind per time bucket, stacked in legend order (the disputer's decisions, outcomes)."""
    cid = _chart_id("bars", title, chart_id)
    kinds = list(buckets.counts)
    box = _wide_box(width, height, _legend_rows(kinds, width - 76))
    totals = [sum(buckets.counts[k][i] for k in kinds) for i in range(len(buckets.starts))]
    summary = f"{sum(totals)} in {len(totals)} buckets of {buckets.width}: " + ", ".join(
        f"{k} {sum(buckets.counts[k])}" for k in kinds
    )
    body = _frame(box, x_label, y_label)
    legend = [(k, PALETTE[i % len(PALETTE)], "", "box") for i, k in enumerate(kinds)]
    if not totals or not any(totals):
        body += _legend(legend, 64, 44, width - 76)
        return _svg(cid, width, height, title, desc or "No data yet.", [*body, _empty(box, "no data yet")])
    ticks = nice_ticks(0, max(totals))
    to_y = _Scale(ticks[0], ticks[-1], box.bottom, box.top)
    band = box.width / len(buckets.starts)
    body += _y_axis(box, ticks, to_y)
    every = math.ceil(len(buckets.starts) / 6)
    body += _x_ticks(box, [(box.left + band * (i + 0.5), _bucket_label(start, buckets.width))
                           for i, start in enumerate(buckets.starts) if i % every == 0])  # fmt: skip
    for i, start in enumerate(buckets.starts):
        level = 0
        x = box.left + band * i + band * 0.1
        when = _bucket_label(start, buckets.width)
        for k, kind in enumerate(kinds):
            n = buckets.counts[kind][i]
            if n == 0:
                continue
            top, bottom = to_y(level + n), to_y(level)
            body.append(
                f'<rect class="bar" x="{_num(x)}" y="{_num(top)}" width="{_num(band * 0.8)}" '
                f'height="{_num(bottom - top)}" fill="{PALETTE[k % len(PALETTE)]}" stroke="#ffffff" stroke-width="1">'
                f"<title>{text(kind)}: {n} from {text(when)}</title></rect>"
            )
            level += n
    body += _legend(legend, 64, 44, width - 76)
    return _svg(cid, width, height, title, desc or summary, body)


def _square_box(size: int, legend: Sequence[tuple[str, str, str, str]]) -> Box:
    top = 40 + 16 * _legend_rows([label for label, *_ in legend], size - 76) + 12
    return Box(64, top, size - 64 - 20, size - top - 56)


def _unit_axes(box: Box, x_label: str, y_label: str) -> tuple[list[str], _Scale, _Scale]:
    to_x, to_y = _Scale(0, 1, box.left, box.right), _Scale(0, 1, box.bottom, box.top)
    ticks = [i / 5 for i in range(6)]
    body = _frame(box, x_label, y_label) + _y_axis(box, ticks, to_y)
    body += _x_ticks(box, [(to_x(t), _fmt(t, 0.2)) for t in ticks])
    return body, to_x, to_y


def _diagonal(box: Box) -> str:
    return (f'<line class="diagonal" x1="{_num(box.left)}" y1="{_num(box.bottom)}" x2="{_num(box.right)}" '
            f'y2="{_num(box.top)}" stroke="{AXIS}" stroke-dasharray="4 4"/>')  # fmt: skip


def roc_chart(
    scores: Sequence[float],
    labels: Sequence[int],
    *,
    title: str = "ROC curve",
    judge: str = "judge",
    size: int = 400,
    chart_id: str | None = None,
) -> str:
    """The ROC curve of scores against labels (1 correct, 0 wrong; "correct" when score >= threshold), its AUROC
    in the title and the legend, and the chance diagonal."""
    points = roc_points(scores, labels)
    auc = None if points is None else area_under(points)
    shown = "AUROC n/a" if auc is None else f"AUROC {auc:.3f}"
    full_title = f"{title} ({shown})"
    cid = _chart_id("roc", full_title, chart_id)
    legend = [(f"{judge} ({shown})", PALETTE[0], "", "line"), ("chance (AUROC 0.5)", AXIS, "4 4", "line")]
    box = _square_box(size, legend)
    body, to_x, to_y = _unit_axes(box, "false positive rate (wrong scored correct)",
                                  "true positive rate (correct scored correct)")  # fmt: skip
    body.append(_diagonal(box))
    if points is None:
        desc = f"No ROC curve: the {len(scores)} labelled scores need both correct and wrong answers."
        body.append(_empty(box, "needs correct and wrong answers"))
    else:
        desc = (f"ROC curve of {judge} over {len(scores)} labelled answers, {shown}. Points (false positive rate, "
                f"true positive rate): " + ", ".join(f"({x:.3f}, {y:.3f})" for x, y in points[:50])
                + (" …" if len(points) > 50 else ""))  # fmt: skip
        d = " ".join(f"{'M' if i == 0 else 'L'}{_num(to_x(x))} {_num(to_y(y))}" for i, (x, y) in enumerate(points))
        body.append(f'<path class="curve" d="{d}" fill="none" stroke="{PALETTE[0]}" stroke-width="2.5">'
                    f"<title>{text(judge)}: {shown}</title></path>")  # fmt: skip
    body += _legend(legend, 64, 44, size - 76)
    return _svg(cid, size, size, full_title, desc, body)


def calibration_chart(
    scores: Sequence[float],
    labels: Sequence[int],
    *,
    bins: int = 10,
    title: str = "Calibration",
    judge: str = "judge",
    size: int = 400,
    chart_id: str | None = None,
) -> str:
    """A reliability diagram: per equal-width score bin, a bar as high as the share of correct answers in it, a dot
    at (mean score, that share), the answer count above the plot; the diagonal is perfect calibration."""
    found = reliability_bins(scores, labels, bins)
    error = calibration_error(found)
    shown = "ECE n/a" if error is None else f"ECE {error:.3f}"
    full_title = f"{title} ({shown})"
    cid = _chart_id("calibration", full_title, chart_id)
    legend = [(f"share correct per bin ({shown})", PALETTE[0], "", "box"), ("mean score", PALETTE[1], "", "box"),
              ("perfect calibration", AXIS, "4 4", "line")]  # fmt: skip
    box = _square_box(size, legend)
    body, to_x, to_y = _unit_axes(box, "score (judge's confidence the answer is correct)",
                                  "observed share correct")  # fmt: skip
    body.append(_diagonal(box))
    described: list[str] = []
    for b in found:
        if b.count == 0 or b.observed is None or b.mean_score is None:
            continue
        x0, x1, top = to_x(b.low) + 1, to_x(b.high) - 1, to_y(b.observed)
        what = (f"scores {b.low:.2f} to {b.high:.2f}: {b.count} answers, {b.observed:.0%} correct, "
                f"mean score {b.mean_score:.3f}")  # fmt: skip
        described.append(what)
        body.append(
            f'<rect class="bin" x="{_num(x0)}" y="{_num(top)}" width="{_num(x1 - x0)}" '
            f'height="{_num(box.bottom - top)}" fill="{PALETTE[0]}" fill-opacity="0.75"><title>{text(what)}</title>'
            "</rect>"
        )
        body.append(f'<circle class="mean" cx="{_num(to_x(b.mean_score))}" cy="{_num(top)}" r="3.5" '
                    f'fill="{PALETTE[1]}"><title>{text(what)}</title></circle>')  # fmt: skip
        # Counts in a row above the plot, on white: inside a full bar they would lose their contrast.
        body.append(f'<text class="count" x="{_num((x0 + x1) / 2)}" y="{_num(box.top - 3)}" text-anchor="middle" '
                    f'font-size="10" fill="{TEXT}">{b.count}</text>')  # fmt: skip
    if not described:
        body.append(_empty(box, "no scores"))
    body += _legend(legend, 64, 44, size - 76)
    desc = f"Reliability diagram of {judge} over {len(scores)} scores in {bins} bins, {shown}. " + "; ".join(described)
    return _svg(cid, size, size, full_title, desc, body)


def side_by_side(charts: Sequence[str], *, title: str, desc: str, chart_id: str | None = None) -> str:
    """Several charts of this module in one SVG, left to right (what `disputer eval --plot` writes)."""
    sizes = [_size_of(c) for c in charts]
    cid = _chart_id("charts", title, chart_id)
    width, height = sum(w for w, _ in sizes), max((h for _, h in sizes), default=0)
    body, x = [], 0
    for chart, (w, _) in zip(charts, sizes, strict=True):
        body.append(chart.replace("<svg ", f'<svg x="{x}" ', 1))
        x += w
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{cid}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="group" aria-labelledby="{cid}-title {cid}-desc">',
            f'<title id="{cid}-title">{text(title)}</title>',
            f'<desc id="{cid}-desc">{text(desc)}</desc>',
            *body,
            "</svg>",
        ]
    )


def _size_of(chart: str) -> tuple[int, int]:
    found = re.match(r'<svg [^>]*?width="(\d+)" height="(\d+)"', chart)
    if found is None:
        raise ValueError("not a chart of attest.ui.charts")
    return int(found[1]), int(found[2])

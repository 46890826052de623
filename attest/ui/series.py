"""Plain data for the dashboard's charts, computed from plain data: ROC points and reliability bins from labelled
scores, counts per kind per time bucket from timed events, and the asserter's bonds at stake from the ledger's
stakes (`Ledger.stakes`). Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from attest.ledger import Stake
from attest.storage import parse_time
from attest.units import format_units

# Bucket widths tried in order, the first giving at most `max_buckets` buckets over the events' span.
BUCKET_WIDTHS = tuple(
    timedelta(**unit)
    for unit in (
        {"minutes": 1}, {"minutes": 5}, {"minutes": 15}, {"hours": 1}, {"hours": 6}, {"days": 1}, {"days": 7},
        {"days": 30}, {"days": 365},
    )
)  # fmt: skip
OUTCOME_KINDS = ("asserted", "disputed", "attested", "rejected")


@dataclass(frozen=True)
class Series:
    """One line of a time chart: (time, value) points; a step chart holds each value until the next point."""

    label: str
    points: tuple[tuple[datetime, float], ...]


@dataclass(frozen=True)
class Buckets:
    """Counts per kind in equal time buckets: `counts[kind][i]` happened in [starts[i], starts[i] + width)."""

    starts: tuple[datetime, ...]
    width: timedelta
    counts: dict[str, tuple[int, ...]]  # in legend order


@dataclass(frozen=True)
class ReliabilityBin:
    """Scores in [low, high) (the top bin includes 1): how many, their mean, and the share that was correct."""

    low: float
    high: float
    count: int
    mean_score: float | None  # None in an empty bin
    observed: float | None  # share of label 1; None in an empty bin


def _pairs(scores: Sequence[float], labels: Sequence[int]) -> list[tuple[float, int]]:
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    for s in scores:
        if not (math.isfinite(s) and 0 <= s <= 1):
            raise ValueError(f"a score is between 0 and 1, not {s}")
    return [(float(s), 1 if y == 1 else 0) for s, y in zip(scores, labels, strict=True)]


def roc_points(scores: Sequence[float], labels: Sequence[int]) -> list[tuple[float, float]] | None:
    """(false positive rate, true positive rate) as the threshold falls through the distinct scores ("correct"
    when score >= threshold), from (0, 0) to (1, 1); tied scores make one diagonal step. None unless there are
    both correct (1) and wrong (0) answers."""
    pairs = sorted(_pairs(scores, labels), key=lambda p: -p[0])
    positives = sum(y for _, y in pairs)
    negatives = len(pairs) - positives
    if positives == 0 or negatives == 0:
        return None
    points = [(0.0, 0.0)]
    tp = fp = 0
    for i, (score, label) in enumerate(pairs):
        tp += label
        fp += 1 - label
        if i + 1 == len(pairs) or pairs[i + 1][0] != score:
            points.append((fp / negatives, tp / positives))
    return points


def area_under(points: Sequence[tuple[float, float]]) -> float:
    """The trapezoid area under a curve of (x, y) points in x order: for ROC points, the AUROC (ties count half,
    as in the rank formula)."""
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairwise(points))


def reliability_bins(scores: Sequence[float], labels: Sequence[int], bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width score bins, empty ones included; a score of exactly 1 falls in the top bin (as the disputer's
    ECE bins them)."""
    if bins < 1:
        raise ValueError(f"at least one bin, not {bins}")
    totals = [[0.0, 0, 0] for _ in range(bins)]  # sum of scores, correct, count
    for s, y in _pairs(scores, labels):
        b = min(int(s * bins), bins - 1)
        totals[b][0] += s
        totals[b][1] += y
        totals[b][2] += 1
    return [
        ReliabilityBin(i / bins, (i + 1) / bins, int(n), total / n if n else None, hits / n if n else None)
        for i, (total, hits, n) in enumerate(totals)
    ]


def calibration_error(bins: Sequence[ReliabilityBin]) -> float | None:
    """Expected calibration error: the count-weighted gap between mean score and observed share."""
    n = sum(b.count for b in bins)
    if n == 0:
        return None
    return sum(b.count * abs((b.mean_score or 0.0) - (b.observed or 0.0)) for b in bins) / n


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def bucket_counts(
    events: Iterable[tuple[datetime, str]], *, kinds: Sequence[str] = (), max_buckets: int = 24
) -> Buckets:
    """How many events of each kind fell in each time bucket. The width is the first of BUCKET_WIDTHS that covers
    the events' span in at most `max_buckets` buckets; buckets start at whole multiples of it (UTC). `kinds` fixes
    the legend's order and shows kinds without events; kinds not named follow in order of appearance."""
    timed = [(_utc(at), kind) for at, kind in events]
    order = list(dict.fromkeys([*kinds, *(kind for _, kind in timed)]))
    if not timed:
        return Buckets((), BUCKET_WIDTHS[0], {kind: () for kind in order})
    first, last = min(at for at, _ in timed), max(at for at, _ in timed)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for width in BUCKET_WIDTHS:
        start = epoch + ((first - epoch) // width) * width
        count = (last - start) // width + 1
        if count <= max_buckets:
            break
    counts = {kind: [0] * count for kind in order}
    for at, kind in timed:
        counts[kind][(at - start) // width] += 1
    return Buckets(
        tuple(start + i * width for i in range(count)), width, {kind: tuple(c) for kind, c in counts.items()}
    )


def _currency(stake: Stake) -> str:
    name = stake.symbol or f"{stake.currency[:6]}…{stake.currency[-4:]}"
    units = "" if stake.decimals is not None else " (base units)"
    return f"{name}{units} on {stake.network}"


def stake_series(stakes: Sequence[Stake], *, until: datetime | None = None) -> list[Series]:
    """The asserter's bonds at stake over time, one series per currency and network: a bond counts from its
    assertion until it settled (or its chain was found gone). With `until`, each series is held to that time."""
    changes: dict[str, list[tuple[datetime, float]]] = {}
    for stake in stakes:
        amount = float(stake.bond if stake.decimals is None else format_units(stake.bond, stake.decimals))
        moves = changes.setdefault(_currency(stake), [])
        moves.append((_utc(parse_time(stake.asserted_at)), amount))
        if stake.ended_at is not None:
            moves.append((_utc(parse_time(stake.ended_at)), -amount))
    found: list[Series] = []
    for label, moves in changes.items():
        level, points = 0.0, list[tuple[datetime, float]]()
        for at, delta in sorted(moves, key=lambda m: m[0]):
            level += delta
            if points and points[-1][0] == at:
                points[-1] = (at, level)
            else:
                points.append((at, level))
        if until is not None and _utc(until) > points[-1][0]:
            points.append((_utc(until), level))
        found.append(Series(label, tuple(points)))
    return found


def outcome_events(stakes: Iterable[Stake]) -> list[tuple[datetime, str]]:
    """What happened to the asserter's assertions, and when: asserted, disputed, settled as attested or rejected
    (for `bucket_counts(..., kinds=OUTCOME_KINDS)`). A chain found gone is no outcome."""
    events: list[tuple[datetime, str]] = []
    for stake in stakes:
        events.append((parse_time(stake.asserted_at), "asserted"))
        if stake.disputed_at is not None:
            events.append((parse_time(stake.disputed_at), "disputed"))
        if stake.ended_at is not None and stake.outcome in ("attested", "rejected"):
            events.append((parse_time(stake.ended_at), stake.outcome))
    return events

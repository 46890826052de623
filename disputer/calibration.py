"""Calibration: a judge's raw score mapped to how often answers with that score were really correct.

Fitted by isotonic regression (pool adjacent violators) on labelled (raw score, label) pairs, so the map is
monotone: a higher raw score never maps lower. Between fitted points the map interpolates linearly; outside them
it holds the end values. A map belongs to the judge it was fitted for and names it; the JSON file is versioned.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest.errors import CalibrationError
from attest.jsonsafe import nested_deeper_than

FORMAT = "llm-attest/calibration/v1"
METHOD = "isotonic"
MAX_KNOTS = 10_000
MAX_FILE_BYTES = 1_048_576


@dataclass(frozen=True)
class CalibrationMap:
    judge: str  # the label of the judge whose raw scores this maps ("grounding-v1", "openai:gpt-4.1-mini")
    knots: tuple[tuple[float, float], ...]  # (raw, calibrated): raw strictly increasing, calibrated non-decreasing
    fitted_on: int  # labelled pairs used

    def __post_init__(self) -> None:
        if not self.judge.strip():
            raise CalibrationError("a calibration map names the judge it was fitted for")
        if not 1 <= len(self.knots) <= MAX_KNOTS:
            raise CalibrationError(f"a calibration map has 1 to {MAX_KNOTS} knots, not {len(self.knots)}")
        for x, y in self.knots:
            if not (_unit(x) and _unit(y)):
                raise CalibrationError(f"calibration knot ({x}, {y}) is outside [0, 1]")
        for (x0, y0), (x1, y1) in zip(self.knots, self.knots[1:], strict=False):
            if not (x0 < x1 and y0 <= y1):
                raise CalibrationError("calibration knots must rise strictly in raw score and never fall in value")
        if self.fitted_on < 1:
            raise CalibrationError("a calibration map is fitted on at least one labelled score")

    def apply(self, score: float) -> float:
        """The calibrated score for a raw score in [0, 1]."""
        if not _unit(score):
            raise CalibrationError(f"a raw score lies in [0, 1], not {score}")
        xs = [x for x, _ in self.knots]
        i = bisect_right(xs, score)
        if i == 0:
            return self.knots[0][1]
        if i == len(xs):
            return self.knots[-1][1]
        (x0, y0), (x1, y1) = self.knots[i - 1], self.knots[i]
        return y0 + (y1 - y0) * (score - x0) / (x1 - x0)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "method": METHOD,
                "judge": self.judge,
                "fitted_on": self.fitted_on,
                "knots": [list(k) for k in self.knots],
            },
            indent=2,
        )

    def save(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, text: str) -> CalibrationMap:
        if nested_deeper_than(text, 3):
            raise CalibrationError("calibration JSON is nested more deeply than a calibration map")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise CalibrationError(f"calibration file is not JSON ({err})") from None
        if not isinstance(data, dict):
            raise CalibrationError("calibration file is not a JSON object")
        if data.get("format") != FORMAT:
            raise CalibrationError(
                f"calibration format {data.get('format')!r} is not {FORMAT!r}; refit it with this release"
            )
        if data.get("method") != METHOD:
            raise CalibrationError(f"calibration method {data.get('method')!r} is not supported (only {METHOD!r})")
        unknown = set(data) - {"format", "method", "judge", "fitted_on", "knots"}
        if unknown:
            raise CalibrationError(f"calibration file has unknown fields: {', '.join(sorted(unknown))}")
        judge, fitted_on, knots = data.get("judge"), data.get("fitted_on"), data.get("knots")
        if not isinstance(judge, str):
            raise CalibrationError("calibration file needs a string 'judge'")
        if not isinstance(fitted_on, int) or isinstance(fitted_on, bool):
            raise CalibrationError("calibration file needs an integer 'fitted_on'")
        if not isinstance(knots, list) or not all(_is_pair(k) for k in knots):
            raise CalibrationError("calibration 'knots' must be a list of [raw, calibrated] number pairs")
        return cls(judge, tuple((float(x), float(y)) for x, y in knots), fitted_on)

    @classmethod
    def load(cls, path: Path) -> CalibrationMap:
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise CalibrationError(f"cannot read calibration file {path}: {err.strerror}") from None
        if len(data) > MAX_FILE_BYTES:
            raise CalibrationError(f"calibration file {path} is over {MAX_FILE_BYTES:,} bytes; it is not one")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CalibrationError(f"calibration file {path} is not UTF-8") from None
        try:
            return cls.from_json(text)
        except CalibrationError as err:
            raise CalibrationError(f"{path}: {err}") from None


def fit_isotonic(judge: str, pairs: Iterable[tuple[float, int]]) -> CalibrationMap:
    """The monotone map that fits (raw score, label 0|1) pairs best in squared error (pool adjacent violators)."""
    rows = list(pairs)
    for score, label in rows:
        if not _unit(score) or label not in (0, 1) or isinstance(label, bool):
            raise CalibrationError(f"calibration needs scores in [0, 1] and labels 0 or 1, not ({score}, {label!r})")
    if len(rows) < 2 or len({label for _, label in rows}) < 2:
        raise CalibrationError("calibration needs at least one correct (1) and one wrong (0) labelled answer")
    # Equal scores are one point weighted by their count; the pooling below must never split them.
    groups: dict[float, list[float]] = {}
    for score, label in rows:
        group = groups.setdefault(float(score), [0.0, 0.0])
        group[0] += label
        group[1] += 1
    # Blocks of [low score, high score, label sum, weight], pooled while a block's mean is below its predecessor's.
    blocks: list[list[float]] = []
    for score in sorted(groups):
        blocks.append([score, score, *groups[score]])
        while len(blocks) > 1 and blocks[-2][2] / blocks[-2][3] > blocks[-1][2] / blocks[-1][3]:
            last = blocks.pop()
            blocks[-1][1] = last[1]
            blocks[-1][2] += last[2]
            blocks[-1][3] += last[3]
    knots: list[tuple[float, float]] = []
    for low, high, total, weight in blocks:
        value = round(total / weight, 12)
        knots.append((low, value))
        if high > low:
            knots.append((high, value))
    return CalibrationMap(judge, tuple(knots), len(rows))


def _unit(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )

"""Calibration maps: pool-adjacent-violators matches the isotonic solution, the map is monotone and interpolates,
improves a miscalibrated judge, and its versioned JSON file round-trips and is validated."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from attest.errors import CalibrationError
from disputer.calibration import FORMAT, CalibrationMap, fit_isotonic
from disputer.evalstats import brier, ece


def isotonic_by_minimax(ys: list[float]) -> list[float]:
    """The isotonic fit at each point, by its closed form: max over j <= i of min over k >= i of mean(y[j..k])."""
    n = len(ys)
    return [max(min(sum(ys[j : k + 1]) / (k + 1 - j) for k in range(i, n)) for j in range(i + 1)) for i in range(n)]


def test_a_small_fit_pools_the_violators_and_interpolates_between_blocks() -> None:
    fitted = fit_isotonic("grounding-v1", [(0.1, 0), (0.2, 1), (0.3, 0), (0.4, 1)])
    assert fitted.knots == ((0.1, 0.0), (0.2, 0.5), (0.3, 0.5), (0.4, 1.0))
    assert fitted.fitted_on == 4 and fitted.judge == "grounding-v1"
    assert fitted.apply(0.0) == 0.0 and fitted.apply(0.1) == 0.0
    assert fitted.apply(0.15) == pytest.approx(0.25)
    assert fitted.apply(0.25) == 0.5 and fitted.apply(0.35) == pytest.approx(0.75)
    assert fitted.apply(0.4) == 1.0 and fitted.apply(1.0) == 1.0


@pytest.mark.parametrize("seed", range(8))
def test_the_fit_is_the_isotonic_regression(seed: int) -> None:
    rng = random.Random(seed)
    xs = sorted(rng.sample(range(1, 1000), 40))
    pairs = [(x / 1000, int(rng.random() < x / 1000)) for x in xs]
    pairs += [(0.0005, 0), (0.9995, 1)]  # both labels present whatever the draw
    pairs.sort()
    fitted = fit_isotonic("j", pairs)
    expected = isotonic_by_minimax([float(y) for _, y in pairs])
    assert [fitted.apply(x) for x, _ in pairs] == pytest.approx(expected)
    grid = [i / 200 for i in range(201)]
    values = [fitted.apply(x) for x in grid]
    assert all(a <= b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("seed", range(6))
def test_with_many_ties_the_fit_is_the_weighted_isotonic_regression(seed: int) -> None:
    rng = random.Random(100 + seed)
    pairs = [(round(rng.random(), 1), int(rng.random() < 0.5)) for _ in range(60)] + [(0.0, 0), (1.0, 1)]
    fitted = fit_isotonic("j", pairs)
    xs = sorted({x for x, _ in pairs})
    sums = [sum(y for x2, y in pairs if x2 == x) for x in xs]
    counts = [sum(1 for x2, _ in pairs if x2 == x) for x in xs]
    n = len(xs)
    expected = [
        max(min(sum(sums[j : k + 1]) / sum(counts[j : k + 1]) for k in range(i, n)) for j in range(i + 1))
        for i in range(n)
    ]
    assert [fitted.apply(x) for x in xs] == pytest.approx(expected)


def test_tied_scores_are_pooled_before_fitting() -> None:
    fitted = fit_isotonic("j", [(0.5, 1), (0.5, 0), (0.5, 0), (0.9, 1), (0.2, 0)])
    assert fitted.apply(0.5) == pytest.approx(1 / 3)
    assert [x for x, _ in fitted.knots] == [0.2, 0.5, 0.9]
    assert [y for _, y in fitted.knots] == pytest.approx([0.0, 1 / 3, 1.0])


def test_calibration_fixes_an_overconfident_judge() -> None:
    rng = random.Random(7)
    # A judge that says 0.9 when answers are right 60% of the time, and 0.3 when they are right 10% of the time.
    pairs = [(0.9, int(rng.random() < 0.6)) for _ in range(300)] + [(0.3, int(rng.random() < 0.1)) for _ in range(300)]
    scores, labels = [s for s, _ in pairs], [y for _, y in pairs]
    fitted = fit_isotonic("j", pairs)
    calibrated = [fitted.apply(s) for s in scores]
    raw_ece, fixed_ece = ece(scores, labels), ece(calibrated, labels)
    assert raw_ece is not None and fixed_ece is not None and fixed_ece < 0.01 < 0.2 < raw_ece
    raw_brier, fixed_brier = brier(scores, labels), brier(calibrated, labels)
    assert raw_brier is not None and fixed_brier is not None and fixed_brier < raw_brier


def test_the_json_file_round_trips(tmp_path: Path) -> None:
    fitted = fit_isotonic("openai:gpt-4.1-mini", [(0.1, 0), (0.35, 1), (0.3, 0), (0.8, 1)])
    path = tmp_path / "calibration.json"
    fitted.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT and data["method"] == "isotonic" and data["fitted_on"] == 4
    loaded = CalibrationMap.load(path)
    assert loaded == fitted


def valid() -> dict[str, object]:
    data = json.loads(fit_isotonic("j", [(0.1, 0), (0.9, 1)]).to_json())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "llm-attest/calibration/v0"}, "is not 'llm-attest/calibration/v1'"),
        ({"method": "platt"}, "not supported"),
        ({"extra": 1}, "unknown fields: extra"),
        ({"judge": 5}, "string 'judge'"),
        ({"judge": " "}, "names the judge"),
        ({"fitted_on": True}, "integer 'fitted_on'"),
        ({"fitted_on": 0}, "at least one"),
        ({"knots": []}, "1 to 10000 knots"),
        ({"knots": [[0.1, 0.5], [0.1, 0.6]]}, "rise strictly"),
        ({"knots": [[0.1, 0.6], [0.2, 0.5]]}, "never fall"),
        ({"knots": [[0.1, 1.5]]}, r"outside \[0, 1\]"),
        ({"knots": [[0.1, "0.5"]]}, "number pairs"),
        ({"knots": [[0.1, 0.2, 0.3]]}, "number pairs"),
        ({"knots": [[0.1, True]]}, "number pairs"),
    ],
)
def test_a_bad_calibration_file_is_refused_with_the_reason(
    change: dict[str, object], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({**valid(), **change}), encoding="utf-8")
    with pytest.raises(CalibrationError, match=message) as raised:
        CalibrationMap.load(path)
    assert str(path) in str(raised.value)


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="cannot read"):
        CalibrationMap.load(tmp_path / "missing.json")
    for name, data, message in [
        ("latin1.json", b'{"judge": "\xe9"}', "not UTF-8"),
        ("nan.json", json.dumps({**valid(), "knots": [[0.1, float("nan")]]}).encode(), "outside"),
        ("deep.json", b"[" * 100_000, "nested"),
        ("junk.json", b"not json", "not JSON"),
        ("list.json", b"[1, 2]", "not a JSON object"),
        ("big.json", b" " * 1_100_000, "over 1,048,576 bytes"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CalibrationError, match=message):
            CalibrationMap.load(path)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([(0.1, 1), (0.9, 1)], "at least one correct"),
        ([(0.1, 0)], "at least one correct"),
        ([(0.1, 0), (0.9, 2)], "labels 0 or 1"),
        ([(0.1, 0), (0.9, True)], "labels 0 or 1"),
        ([(0.1, 0), (1.2, 1)], r"scores in \[0, 1\]"),
        ([(float("nan"), 0), (0.5, 1)], r"scores in \[0, 1\]"),
    ],
)
def test_a_fit_needs_both_labels_and_valid_pairs(pairs: list[tuple[float, int]], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        fit_isotonic("j", pairs)


def test_apply_refuses_a_score_outside_the_unit_interval() -> None:
    fitted = fit_isotonic("j", [(0.1, 0), (0.9, 1)])
    for bad in (-0.01, 1.01, float("nan")):
        with pytest.raises(CalibrationError):
            fitted.apply(bad)

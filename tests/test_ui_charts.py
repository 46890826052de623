"""The dashboard's charts (attest/ui/charts.py) and the data they draw (attest/ui/series.py): well-formed,
accessible SVG whose marks land where the data puts them, hostile labels escaped, and the pure data shaping."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from attest.ui.charts import (
    calibration_chart,
    nice_ticks,
    roc_chart,
    side_by_side,
    stacked_bar_chart,
    step_chart,
)
from attest.ui.series import (
    Buckets,
    Series,
    area_under,
    bucket_counts,
    calibration_error,
    reliability_bins,
    roc_points,
)
from disputer.evalstats import auroc, ece

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOSTILE = "</text><script>alert('x')</script> & \"q\" \x00\x1b]0;owned\x07 <![CDATA[x]]>"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def accessible(root: ET.Element) -> tuple[str, str]:
    """The chart names itself for assistive technology: role img, labelled by its own title and desc."""
    assert root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None and title.text and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert not list(root.iter(f"{SVG}script"))
    assert not any(k.startswith("on") for e in root.iter() for k in e.attrib)  # no event handlers either
    return title.text, desc.text


def plot_area(root: ET.Element) -> tuple[float, float, float, float]:
    area = next(e for e in root.iter(f"{SVG}rect") if e.get("class") == "plot-area")
    return tuple(float(area.get(k, "nan")) for k in ("x", "y", "width", "height"))  # type: ignore[return-value]


def path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", d)]


# -- ROC ------------------------------------------------------------------------------------------------------
def test_a_perfect_classifiers_roc_passes_through_the_top_left_corner() -> None:
    scores, labels = [0.9, 0.8, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0]
    assert roc_points(scores, labels) == [(0.0, 0.0), (0.0, 1 / 3), (0.0, 2 / 3), (0.0, 1.0), (0.5, 1.0), (1.0, 1.0)]
    root = parse(roc_chart(scores, labels, judge="grounding-v2"))
    title, desc = accessible(root)
    assert title == "ROC curve (AUROC 1.000)" and "grounding-v2 over 5 labelled answers" in desc
    x, y, width, height = plot_area(root)
    curve = next(e for e in root.iter(f"{SVG}path") if e.get("class") == "curve")
    drawn = path_points(curve.get("d", ""))
    assert drawn[0] == (x, y + height) and drawn[-1] == (x + width, y)  # (0, 0) and (1, 1)
    assert (x, y) in drawn  # (FPR 0, TPR 1): every correct answer above every wrong one
    legend = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert "grounding-v2 (AUROC 1.000)" in legend and "chance (AUROC 0.5)" in legend


@pytest.mark.parametrize("seed", range(4))
def test_the_area_under_the_drawn_roc_points_is_the_disputers_auroc(seed: int) -> None:
    rng = random.Random(seed)
    scores = [round(rng.random(), 1) for _ in range(80)]  # ties are common
    labels = [int(rng.random() < s) for s in scores]
    points = roc_points(scores, labels)
    assert points is not None and area_under(points) == pytest.approx(auroc(scores, labels))
    assert f"AUROC {auroc(scores, labels):.3f}" in roc_chart(scores, labels)


def test_roc_without_both_classes_says_so_instead_of_drawing() -> None:
    assert roc_points([0.2, 0.9], [1, 1]) is None
    root = parse(roc_chart([0.2, 0.9], [1, 1]))
    title, desc = accessible(root)
    assert title == "ROC curve (AUROC n/a)" and "need both correct and wrong answers" in desc
    assert not [e for e in root.iter(f"{SVG}path") if e.get("class") == "curve"]


def test_scores_outside_zero_to_one_or_mismatched_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        roc_points([1.5, 0.2], [1, 0])
    with pytest.raises(ValueError, match="2 scores for 1 labels"):
        reliability_bins([0.1, 0.2], [1])


# -- calibration ---------------------------------------------------------------------------------------------
def test_a_calibration_bins_bar_is_as_high_as_its_observed_share_correct() -> None:
    scores = [0.05, 0.15, 0.12, 0.55, 0.58, 0.51, 0.52, 0.95, 1.0]
    labels = [0, 0, 1, 1, 0, 1, 1, 1, 1]
    bins = reliability_bins(scores, labels)
    assert [b.count for b in bins] == [1, 2, 0, 0, 0, 4, 0, 0, 0, 2]  # 1.0 falls in the top bin
    assert bins[5].observed == 0.75 and bins[5].mean_score == pytest.approx(0.54)
    assert calibration_error(bins) == pytest.approx(ece(scores, labels))
    root = parse(calibration_chart(scores, labels, judge="grounding-v1"))
    title, desc = accessible(root)
    assert title == f"Calibration (ECE {ece(scores, labels):.3f})" and "4 answers, 75% correct" in desc
    x, y, width, height = plot_area(root)
    bars = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bin"]
    assert len(bars) == 4  # empty bins draw nothing
    drawn = {round((float(b.get("x", 0)) - x) / width, 1): float(b.get("height", 0)) / height for b in bars}
    assert drawn == pytest.approx({0.0: 0.0, 0.1: 0.5, 0.5: 0.75, 0.9: 1.0}, abs=0.01)
    for bar in bars:  # every bar stands on the axis
        assert float(bar.get("y", 0)) + float(bar.get("height", 0)) == pytest.approx(y + height, abs=0.01)
    diagonal = next(e for e in root.iter(f"{SVG}line") if e.get("class") == "diagonal")
    assert (float(diagonal.get("x1", 0)), float(diagonal.get("y2", 0))) == (x, y)


# -- time charts ---------------------------------------------------------------------------------------------
def test_a_step_chart_holds_each_value_until_the_next_point() -> None:
    points = ((T0, 0.0), (T0 + timedelta(hours=2), 250.0), (T0 + timedelta(hours=5), 100.0))
    root = parse(step_chart([Series("USDC on local", points)], title="Bonds at stake", y_label="bond"))
    title, desc = accessible(root)
    assert title == "Bonds at stake" and "USDC on local: 3 changes, peak 250, latest 100" in desc
    path = next(e for e in root.iter(f"{SVG}path") if e.get("class") == "series")
    steps = re.findall(r"([MHV])(-?[\d.]+)", path.get("d", ""))
    assert [kind for kind, _ in steps] == ["M", "H", "V", "H", "V", "H"]
    x, y, width, height = plot_area(root)
    verticals = [float(v) for kind, v in steps if kind == "V"]
    # The y axis runs 0 to 250 (nice ticks): 250 at the top, 100 at 60% of the way down.
    assert verticals == pytest.approx([y, y + height * (1 - 100 / 250)], abs=0.01)
    assert float(steps[-1][1]) == pytest.approx(x + width)  # the last value is held to the right edge


def test_decisions_over_time_are_stacked_per_bucket() -> None:
    events = [(T0, "dispute"), (T0 + timedelta(minutes=10), "none"), (T0 + timedelta(minutes=20), "none")]
    events.append((T0 + timedelta(hours=3), "dispute"))
    buckets = bucket_counts(events, kinds=["none", "dispute", "undecided"], max_buckets=6)
    assert buckets.width == timedelta(hours=1) and len(buckets.starts) == 4 and buckets.starts[0] == T0
    assert buckets.counts == {"none": (2, 0, 0, 0), "dispute": (1, 0, 0, 1), "undecided": (0, 0, 0, 0)}
    root = parse(stacked_bar_chart(buckets, title="The disputer's decisions"))
    _, desc = accessible(root)
    assert desc == "4 in 4 buckets of 1:00:00: none 2, dispute 2, undecided 0"
    bars = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]
    tips = ["".join(b.itertext()) for b in bars]
    assert tips == ["none: 2 from 12-01 09:00", "dispute: 1 from 12-01 09:00", "dispute: 1 from 12-01 12:00"]
    _, y, _, height = plot_area(root)
    first = [float(b.get("height", 0)) for b in bars[:2]]
    # The y axis tops at 3 (the first bucket's total): 2 none on the axis, 1 dispute on top of them.
    assert first == pytest.approx([height * 2 / 3, height / 3], abs=0.02)
    assert float(bars[0].get("y", 0)) == pytest.approx(y + height / 3, abs=0.02)
    assert float(bars[1].get("y", 0)) == pytest.approx(y, abs=0.02)
    assert float(bars[1].get("y", 0)) + first[1] == pytest.approx(float(bars[0].get("y", 0)), abs=0.02)


def test_bucket_width_grows_with_the_span() -> None:
    days = [(T0 + timedelta(days=d), "asserted") for d in range(0, 90, 3)]
    assert bucket_counts(days).width == timedelta(days=7)
    assert bucket_counts([]).starts == ()


def test_empty_charts_say_there_is_no_data() -> None:
    for svg in (
        step_chart([], title="Bonds at stake", y_label="bond"),
        stacked_bar_chart(Buckets((), timedelta(hours=1), {"none": ()}), title="Decisions"),
        calibration_chart([], [], title="Calibration"),
    ):
        root = parse(svg)
        accessible(root)
        assert any("no data yet" in "".join(t.itertext()) or "no scores" in "".join(t.itertext())
                   for t in root.iter(f"{SVG}text"))  # fmt: skip


# -- escaping and structure ----------------------------------------------------------------------------------
def test_hostile_labels_are_text_never_markup() -> None:
    charts = [
        step_chart([Series(HOSTILE, ((T0, 1.0),))], title=HOSTILE, y_label=HOSTILE, x_label=HOSTILE, desc=HOSTILE),
        stacked_bar_chart(bucket_counts([(T0, HOSTILE)]), title=HOSTILE, y_label=HOSTILE),
        roc_chart([0.1, 0.9], [0, 1], title=HOSTILE, judge=HOSTILE),
        calibration_chart([0.1, 0.9], [0, 1], title=HOSTILE, judge=HOSTILE),
    ]
    for svg in charts:
        root = parse(svg)  # well-formed although the label holds markup and characters XML cannot carry
        accessible(root)
        assert "<script" not in svg and "\x00" not in svg and "\x1b" not in svg
        texts = ["".join(e.itertext()) for e in root.iter() if e.tag in (f"{SVG}title", f"{SVG}text")]
        assert any("<script>alert('x')</script>" in t for t in texts)  # shown as the text it is
    assert "&lt;/text&gt;" in charts[0]


def test_side_by_side_holds_the_charts_in_one_svg() -> None:
    roc, cal = roc_chart([0.1, 0.9], [0, 1], chart_id="roc-raw"), calibration_chart([0.1, 0.9], [0, 1])
    root = parse(side_by_side([roc, cal], title="eval", desc="both"))
    inner = root.findall(f"{SVG}svg")
    assert [e.get("x") for e in inner] == ["0", "400"] and inner[0].get("id") == "roc-raw"
    assert root.get("width") == "800"
    with pytest.raises(ValueError, match="chart id"):
        roc_chart([0.1], [1], chart_id='x" onload="alert(1)')


def test_identical_data_gives_identical_bytes() -> None:
    scores, labels = [0.3, 0.6, 0.9], [0, 1, 1]
    assert roc_chart(scores, labels) == roc_chart(list(scores), list(labels))


def test_nice_ticks() -> None:
    assert nice_ticks(0, 250) == [0, 50, 100, 150, 200, 250]
    assert nice_ticks(0, 7) == [0, 2, 4, 6, 8]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]

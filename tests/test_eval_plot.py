"""`disputer eval --plot FILE`: the ROC curve and calibration diagram of a real evaluation (the offline judge on
labelled rows, the CLI in its own process), as one SVG or an HTML page with the numbers; a plot that cannot be
written fails in one line before anything is judged."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from attest.ui.app import create_app
from attest.ui.charts import roc_chart
from attest.ui.disputer_view import disputer_view
from tests.test_edges_16_failures import cli, one_line_failure
from tests.test_ui_charts import SVG, accessible

QUERY = "How often should the wick be trimmed?"
PASSAGE = "Trim the wick every four hours so the flame stays bright and does not smoke the lens."
ROWS = [
    ("Trim the wick every four hours.", 1),
    ("The flame stays bright so trim every four hours.", 1),
    ("Trim the wick every four hours so it does not smoke the lens.", 1),
    ("Replace the lamp with an electric bulb yearly.", 0),
    ("Sailors paint towers red during winter storms.", 0),
    ("Trim the wick once a year.", 0),
]


def dataset(folder: Path) -> Path:
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps({"query": QUERY, "context": [PASSAGE], "answer": a, "label": y}) + "\n"
                            for a, y in ROWS))  # fmt: skip
    return path


def test_eval_plot_writes_the_roc_curve_and_calibration_diagram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    rows = dataset(tmp_path)
    svg = tmp_path / "eval.svg"
    done = cli("eval", "--dataset", str(rows), "--plot", str(svg), "--json", home=home, tool="disputer")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    raw = data["raw"]
    assert data["plot"] == str(svg) and raw["judge"] == "grounding-v2" and raw["rows"] == len(ROWS)
    root = ET.fromstring(svg.read_text())
    charts = root.findall(f"{SVG}svg")
    assert [c.get("id") for c in charts] == ["roc-raw", "cal-raw"]
    titles = [accessible(c)[0] for c in charts]
    assert titles[0] == f"ROC curve, raw scores (AUROC {raw['auroc']:.3f})"
    assert titles[1] == f"Calibration, raw scores (ECE {raw['ece']:.3f})"  # the report's own numbers, drawn
    assert [e.get("class") for e in charts[0].iter(f"{SVG}path")] == ["curve"]
    bins = [e for e in charts[1].iter(f"{SVG}rect") if e.get("class") == "bin"]
    counts = sum(int(t.text or 0) for t in charts[1].iter(f"{SVG}text") if t.get("class") == "count")
    assert bins and counts == raw["decided"]  # every decided score is in one bin, and only those

    # The run is kept as the home's latest evaluation, which the dashboard draws the same way.
    view = disputer_view(home)
    kept = None if view is None else view.latest_eval()
    assert kept is not None and kept.judge == "grounding-v2" and kept.report == raw and kept.dataset == str(rows)
    assert len(kept.scores) == len(kept.labels) == raw["decided"] and sorted(set(kept.labels)) == [0, 1]
    assert f"(AUROC {raw['auroc']:.3f})" in roc_chart(kept.scores, kept.labels)
    monkeypatch.setenv("ATTEST_HOME", str(home))
    with TestClient(create_app("local", scan=False), raise_server_exceptions=False) as client:
        shown = client.get("/disputer")
    assert shown.status_code == 200, shown.text
    drawn = [ET.fromstring(svg) for svg in re.findall(r"<svg\b.*?</svg>", shown.text, re.S)]
    assert [c.get("id") for c in drawn] == ["decisions", "roc-raw", "cal-raw"]  # the dashboard draws the kept run
    assert accessible(drawn[1])[0] == titles[0] and accessible(drawn[2])[0] == titles[1]
    assert [e.get("class") for e in drawn[1].iter(f"{SVG}path")] == ["curve"]
    assert sum(int(t.text or 0) for t in drawn[2].iter(f"{SVG}text") if t.get("class") == "count") == raw["decided"]

    # An .html name: one page holding both charts (and the calibrated ones) with the numbers beside them.
    page = tmp_path / "eval.html"
    text = cli("eval", "--dataset", str(rows), "--plot", str(page), "--save-calibration", str(tmp_path / "c.json"),
               home=home, tool="disputer")  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert f"ROC curve and calibration diagram written to {page}" in text.stdout
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<script" not in html
    assert html.count("<svg ") == 4 and 'id="roc-calibrated"' in html and 'id="cal-calibrated"' in html
    assert f"<th scope='row'>auroc</th><td>{raw['auroc']:.4f}</td>" in html
    assert not list(tmp_path.glob(".eval.*.tmp"))  # written through a temporary file, renamed


def test_a_plot_that_cannot_be_written_fails_before_judging(tmp_path: Path) -> None:
    rows = dataset(tmp_path)
    missing = tmp_path / "no-such-folder" / "eval.svg"
    failed = cli("eval", "--dataset", str(rows), "--plot", str(missing), home=tmp_path, tool="disputer")
    one_line_failure(failed, "cannot write the plot", "does not exist", "create it first")
    assert failed.stdout == ""  # nothing judged, nothing reported
    failed = cli("eval", "--dataset", str(rows), "--plot", str(tmp_path), home=tmp_path, tool="disputer")
    one_line_failure(failed, "is a directory", "eval.svg")

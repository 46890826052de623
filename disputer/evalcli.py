"""`disputer eval`: how good the configured judge is on labelled rows, and with `--plot FILE` its ROC curve and
calibration (reliability) diagram drawn by attest/ui/charts.py, as one SVG or, for a `.html` file, a page that
also holds the numbers."""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from attest.errors import PlotError

HTML_SUFFIXES = (".html", ".htm")
_METRICS = ("accuracy", "auroc", "ece", "brier")


def _check_plot_target(path: Path) -> None:
    """Before the judge runs (a model's judging takes minutes): refuse a file that could not be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise PlotError(f"--plot {path} is a directory; name a file such as eval.svg or eval.html")
    if not folder.is_dir():
        raise PlotError(f"cannot write the plot to {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise PlotError(f"cannot write the plot to {path}: the folder {folder} is not writable")


def plot_document(reports: Sequence[tuple[str, dict[str, Any], Sequence[float | None]]], labels: Sequence[int],
                  path: Path) -> str:  # fmt: skip
    """The file's text: for each (name, report, scores) a ROC curve and a reliability diagram of its decided scores
    (undecided verdicts are left out, as from the statistics). An HTML page for a .html name, else one SVG."""
    from attest.ui.charts import calibration_chart, roc_chart, side_by_side

    charts: list[str] = []
    for name, values, scores in reports:
        decided = [(s, y) for s, y in zip(scores, labels, strict=True) if s is not None]
        kept, held = [s for s, _ in decided], [y for _, y in decided]
        judge = f"{values['judge']} ({name})"
        charts.append(roc_chart(kept, held, title=f"ROC curve, {name} scores", judge=judge, chart_id=f"roc-{name}"))
        charts.append(
            calibration_chart(kept, held, title=f"Calibration, {name} scores", judge=judge, chart_id=f"cal-{name}")
        )
    first = reports[0][1]
    title = f"disputer eval: {first['judge']} on {first['rows']} rows"
    if path.suffix.casefold() not in HTML_SUFFIXES:
        desc = "; ".join(_summary(name, values) for name, values, _ in reports)
        return side_by_side(charts, title=title, desc=desc, chart_id="disputer-eval") + "\n"
    sections = []
    for name, values, _ in reports:
        cells = "".join(
            f"<tr><th scope='row'>{key}</th><td>{'-' if values[key] is None else f'{values[key]:.4f}'}</td></tr>"
            for key in _METRICS
        )
        bond = (f"{values['disputes']} disputes (won {values['won']}, lost {values['lost']}, missed "
                f"{values['missed']}) at threshold {values['threshold']}: P/L {values['profit']:+.2f} at bond "
                f"{values['bond']:g}")  # fmt: skip
        sections.append(
            f"<section><h2>{html.escape(name)} scores</h2><table><caption>{values['rows']} rows, "
            f"{values['undecided']} undecided</caption>{cells}</table><p>{html.escape(bond)}</p></section>"
        )
    figures = "\n".join(f"<figure>{chart}</figure>" for chart in charts)
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:system-ui,sans-serif;color:#1a1a1a;"
        "background:#fff;margin:2rem}}figure{{display:inline-block;margin:0 1rem 1rem 0}}"
        "th{{text-align:left;padding-right:1rem}}</style></head>\n"
        f"<body><main><h1>{html.escape(title)}</h1>{''.join(sections)}\n{figures}</main></body></html>\n"
    )


def _summary(name: str, values: dict[str, Any]) -> str:
    shown = ", ".join(f"{k} {'-' if values[k] is None else format(values[k], '.4f')}" for k in _METRICS)
    return f"{name} scores of {values['judge']} over {values['rows']} rows: {shown}"


def write_plot(path: Path, text: str) -> None:
    """Whole or not at all: a temporary file beside it, renamed over it."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError as err:
        if "tmp" in locals():
            Path(tmp).unlink(missing_ok=True)
        raise PlotError(f"cannot write the plot to {path}: {err.strerror}") from None


@click.command("eval")
@click.option("--dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--threshold", type=float, default=None, help="Dispute threshold (default [disputer] threshold).")
@click.option("--bond", type=float, default=1.0, show_default=True, help="Bond size for the P/L, in currency units.")
@click.option("--save-calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Fit an isotonic calibration map on the raw scores and save it here.")  # fmt: skip
@click.option(
    "--plot",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the ROC curve and calibration diagram here: an SVG, or a page with the numbers for .html.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_(
    dataset: Path, threshold: float | None, bond: float, save_calibration: Path | None, plot: Path | None, as_json: bool
) -> None:
    """Accuracy, AUROC, ECE, Brier and bond P/L of the configured judge on labelled rows: JSONL, or what
    `attest export` writes (labels from outcomes; rows not settled yet are skipped). The raw scores are kept as
    the home's latest evaluation, for `attest ui`."""
    from attest.paths import attest_home
    from disputer.calibration import fit_isotonic
    from disputer.config import load_attest_config, load_disputer_config
    from disputer.evalstats import load_dataset, report
    from disputer.judges import judge_from_config
    from disputer.view import keep_eval

    if plot is not None:
        _check_plot_target(plot)
    config = load_disputer_config(threshold=threshold)
    loaded = load_dataset(dataset)
    rows = loaded.rows
    judge = judge_from_config(load_attest_config().llm, config.samples, offline=config.offline_judge)
    verdicts = [judge.judge(r.query, r.context, r.answer) for r in rows]
    labels = [r.label for r in rows]
    raw = [v.score for v in verdicts]
    result = report(
        judge.label, raw, labels, threshold=config.threshold, bond=bond, latencies_ms=[v.latency_ms for v in verdicts]
    )
    data: dict[str, Any] = {"raw": result.as_dict()}
    decided = [(s, y) for s, y in zip(raw, labels, strict=True) if s is not None]
    keep_eval(attest_home(), dataset, data["raw"], [s for s, _ in decided], [y for _, y in decided])
    plotted: list[tuple[str, dict[str, Any], Sequence[float | None]]] = [("raw", data["raw"], raw)]
    if save_calibration is not None:
        calibration = fit_isotonic(judge.label, [(s, y) for s, y in zip(raw, labels, strict=True) if s is not None])
        calibration.save(save_calibration)
        calibrated = [None if s is None else calibration.apply(s) for s in raw]
        data["calibrated"] = report(judge.label, calibrated, labels, threshold=config.threshold, bond=bond).as_dict()
        data["calibration"] = str(save_calibration)
        plotted.append(("calibrated", data["calibrated"], calibrated))
    if plot is not None:
        write_plot(plot, plot_document(plotted, labels, plot))
        data["plot"] = str(plot)
    if as_json:
        click.echo(json.dumps({**data, "unlabelled": loaded.unlabelled}, indent=2))
        return
    if loaded.unlabelled:
        click.echo(f"skipped {loaded.unlabelled} row(s) without a label (exported, not settled yet)")
    for name, values in data.items():
        if name == "calibration":
            click.echo(f"calibration map saved to {values}")
            continue
        if name == "plot":
            click.echo(f"ROC curve and calibration diagram written to {values}")
            continue
        click.echo(f"{name}: judge {values['judge']}, {values['rows']} rows ({values['undecided']} undecided)")
        for key in _METRICS:
            value = values[key]
            click.echo(f"  {key:<9} {'-' if value is None else f'{value:.4f}'}")
        click.echo(
            f"  disputes  {values['disputes']} (won {values['won']}, lost {values['lost']}, missed {values['missed']}) "
            f"at threshold {values['threshold']}: P/L {values['profit']:+.2f} at bond {values['bond']:g}"
        )

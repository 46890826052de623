"""The `disputer` command line: run the daemon, score one assertion, show the state, evaluate a judge.

Expected failures (`AttestError`) become one line on stderr and exit code 1, as in `attest`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from attest import __version__
from attest.errors import AttestError, ConfigError

NETWORK = click.option("--network", default=None, help="Network name (default: the config's default network).")
ACCOUNT = click.option("--account", default=None, help="Signing account (alias or dev:N; default [disputer] account).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
@click.version_option(__version__, prog_name="disputer")
def cli() -> None:
    """Watch llm-attest assertions, judge their answers, and dispute the wrong ones on UMA."""


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


class _Session:
    """The config, chain connection, store and daemon one command works with."""

    def __init__(self, stack: ExitStack, network: str | None, account: str | None, **overrides: Any) -> None:
        from attest.accounts import load_account
        from attest.chain.connect import connect
        from attest.config import config_path
        from disputer.config import load_attest_config, load_disputer_config
        from disputer.daemon import build_daemon
        from disputer.store import DisputerStore

        self.config = load_disputer_config(**overrides)
        self.attest_config = load_attest_config()
        self.ctx = connect(network, config=self.attest_config)
        spec = account or self.config.account or ("dev:2" if self.ctx.network.name == "local" else None)
        loaded = load_account(spec, self.ctx.network.name, prompt=None)
        if loaded.warning:
            click.echo(loaded.warning, err=True)
        self.store = stack.enter_context(DisputerStore())
        self.daemon = build_daemon(
            self.ctx, self.store, self.config, self.attest_config, loaded.account, calibration_base=config_path().parent
        )


@cli.command()
@NETWORK
@ACCOUNT
@click.option("--dry-run", is_flag=True, default=None, help="Decide and record, send nothing.")
@click.option("--once", is_flag=True, help="One pass (poll, judge, act), then exit.")
@click.option("--metrics-port", type=int, default=None, help="Serve /metrics and /healthz on 127.0.0.1:PORT.")
@click.option("--poll-interval", "poll_interval_s", type=float, default=None, help="Seconds between polls.")
def run(
    network: str | None,
    account: str | None,
    dry_run: bool | None,
    once: bool,
    metrics_port: int | None,
    poll_interval_s: float | None,
) -> None:
    """Run the disputer until SIGTERM or SIGINT (JSON log lines on stderr)."""
    from disputer.telemetry import TelemetryServer, json_logging

    handler = json_logging()
    with ExitStack() as stack:
        session = _Session(
            stack, network, account, dry_run=dry_run, metrics_port=metrics_port, poll_interval_s=poll_interval_s
        )
        daemon = session.daemon
        port = session.config.metrics_port
        if port:
            server = TelemetryServer(daemon.metrics, port, max_age_s=3 * session.config.poll_interval_s + 30).start()
            stack.callback(server.stop)

        async def main() -> None:
            if once:
                report = await daemon.step()
                if report.errors:
                    raise AttestError("; ".join(report.errors))
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await daemon.run(stop)

        try:
            asyncio.run(main())
        finally:
            import logging

            logging.getLogger("disputer").removeHandler(handler)


@cli.command()
@click.argument("assertion_id")
@NETWORK
@ACCOUNT
@click.option("--dispute", is_flag=True, help="Record the decision and dispute when the policy says so.")
@click.option("--vote", is_flag=True, help="Vote on the assertion when it is disputed.")
@JSON
def score(
    assertion_id: str, network: str | None, account: str | None, dispute: bool, vote: bool, as_json: bool
) -> None:
    """Judge one assertion and print its score, rationale and the policy's decision."""
    from attest.verify import ASSERTION_ID
    from disputer.daemon import StepReport, made_of
    from disputer.policy import decide

    if not ASSERTION_ID.fullmatch(assertion_id):
        raise ConfigError(f"{assertion_id[:80]!r} is not an assertion id (0x and 64 hex digits)")
    aid = bytes.fromhex(assertion_id[2:])
    with ExitStack() as stack:
        session = _Session(stack, network, account)
        daemon = session.daemon
        daemon.watcher.poll()
        stored = session.store.get(aid)
        if stored is None:
            raise ConfigError(
                f"assertion {assertion_id} is not one the disputer watches on {session.ctx.network.name} "
                "(not ours, not yet confirmed, or older than backfill_s)"
            )
        recorded = session.store.decision(aid)
        evaluation = daemon.evaluator.evaluate(made_of(stored))
        decision = decide(daemon.facts(stored, evaluation))
        report = StepReport()
        if dispute and recorded is None:
            decision = daemon.handle(stored, evaluation, report)
            recorded = session.store.decision(aid)
        vote_outcome = None
        if vote:
            fresh = session.store.get(aid)
            if fresh is None or fresh.status != "disputed":
                vote_outcome = "not disputed: nothing to vote on"
            else:
                vote_outcome = daemon.vote(fresh, report)
        verdict = evaluation.verdict
        data: dict[str, Any] = {
            "assertion": assertion_id.lower(),
            "record": evaluation.record_cid,
            "score": None if verdict is None else verdict.score,
            "calibrated": evaluation.score,
            "rationale": None if verdict is None else verdict.rationale,
            "judge": None if verdict is None else verdict.judge,
            "failed_checks": list(evaluation.failed_checks),
            "undecided": evaluation.undecided_reason,
            "decision": {"action": decision.action, "reason": decision.reason},
            "recorded": None if recorded is None else {"action": recorded.action, "reason": recorded.reason,
                                                       "dry_run": recorded.dry_run},
            "txs": {_hex(k): [{"status": r.row.status, "tx": r.tx_hash, "error": r.error} for r in v]
                    for k, v in report.sent.items()},
            "vote": vote_outcome,
        }  # fmt: skip
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    shown = "undecided" if data["calibrated"] is None else f"{data['calibrated']:.3f}"
    click.echo(f"assertion  {data['assertion']}")
    click.echo(f"record     ipfs://{data['record']}" if data["record"] else "record     (none)")
    click.echo(f"score      {shown}" + (f"  ({data['judge']})" if data["judge"] else ""))
    for failed in data["failed_checks"]:
        click.echo(f"failed     {failed}")
    if data["undecided"]:
        click.echo(f"undecided  {data['undecided']}")
    if data["rationale"]:
        click.echo(f"rationale  {data['rationale']}")
    click.echo(f"decision   {decision.action}: {decision.reason}")
    for results in report.sent.values():
        for r in results:
            click.echo(f"tx         {r.row.kind} {r.row.status} {r.tx_hash or ''} {r.error or ''}".rstrip())
    if vote_outcome is not None:
        click.echo(f"vote       {vote_outcome}")


@cli.command()
@NETWORK
@click.option("--limit", type=int, default=20, show_default=True, help="Latest decisions shown.")
@JSON
def status(network: str | None, limit: int, as_json: bool) -> None:
    """The checkpoint, pending assertions and the latest decisions (reads the state only, no node needed)."""
    from attest.networks import get_network
    from disputer.config import load_attest_config
    from disputer.store import DisputerStore

    net = get_network(network or load_attest_config().defaults.network)
    with DisputerStore() as store:
        summary = store.status_summary(net.chain_id)
        pending = [_hex(a.assertion_id) for a in store.pending(net.chain_id)]
        decided: list[dict[str, Any]] = []
        for a in reversed(store.assertions(net.chain_id, ours=None)):
            d = store.decision(a.assertion_id)
            if d is None:
                continue
            decided.append({
                "assertion": _hex(a.assertion_id), "status": a.status, "action": d.action, "reason": d.reason,
                "score": d.calibrated, "judge": d.judge, "dry_run": d.dry_run, "at": d.created_at,
                "disputed_tx": _hex(a.disputed_tx),
            })  # fmt: skip
            if len(decided) >= limit:
                break
    data = {"network": net.name, **summary, "pending": pending, "latest_decisions": decided}
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    from attest.cli.output import short, table

    checkpoints = summary["checkpoints"]
    where = f"block {checkpoints[0]['block_number']}" if checkpoints else "none yet"
    click.echo(f"network     {net.name} (chain {net.chain_id})")
    click.echo(f"state       {summary['path']}")
    click.echo(f"checkpoint  {where}")
    click.echo(f"pending     {len(pending)}")
    click.echo("decisions   " + (", ".join(f"{k} {v}" for k, v in summary["decisions"].items() if v) or "none"))
    if decided:
        rows = [
            [str(d["assertion"])[:18] + "…", str(d["action"]) + (" (dry run)" if d["dry_run"] else ""),
             "-" if d["score"] is None else f"{d['score']:.3f}", short(str(d["reason"]), 60)]
            for d in decided
        ]  # fmt: skip
        click.echo(table(["assertion", "action", "score", "reason"], rows))


@cli.command("eval")
@click.option("--dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--threshold", type=float, default=None, help="Dispute threshold (default [disputer] threshold).")
@click.option("--bond", type=float, default=1.0, show_default=True, help="Bond size for the P/L, in currency units.")
@click.option("--save-calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Fit an isotonic calibration map on the raw scores and save it here.")  # fmt: skip
@JSON
def eval_(dataset: Path, threshold: float | None, bond: float, save_calibration: Path | None, as_json: bool) -> None:
    """Accuracy, AUROC, ECE, Brier and bond P/L of the configured judge on labelled rows (JSONL)."""
    from disputer.calibration import fit_isotonic
    from disputer.config import load_attest_config, load_disputer_config
    from disputer.judge import judge_from_config
    from disputer.metrics import load_rows, report

    config = load_disputer_config(threshold=threshold)
    rows = load_rows(dataset)
    judge = judge_from_config(load_attest_config().llm, config.samples)
    verdicts = [judge.judge(r.query, r.context, r.answer) for r in rows]
    labels = [r.label for r in rows]
    raw = [v.score for v in verdicts]
    result = report(
        judge.label, raw, labels, threshold=config.threshold, bond=bond, latencies_ms=[v.latency_ms for v in verdicts]
    )
    data: dict[str, Any] = {"raw": result.as_dict()}
    if save_calibration is not None:
        calibration = fit_isotonic(judge.label, [(s, y) for s, y in zip(raw, labels, strict=True) if s is not None])
        calibration.save(save_calibration)
        calibrated = [None if s is None else calibration.apply(s) for s in raw]
        data["calibrated"] = report(judge.label, calibrated, labels, threshold=config.threshold, bond=bond).as_dict()
        data["calibration"] = str(save_calibration)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for name, values in data.items():
        if isinstance(values, str):
            click.echo(f"calibration map saved to {values}")
            continue
        click.echo(f"{name}: judge {values['judge']}, {values['rows']} rows ({values['undecided']} undecided)")
        for key in ("accuracy", "auroc", "ece", "brier"):
            value = values[key]
            click.echo(f"  {key:<9} {'-' if value is None else f'{value:.4f}'}")
        click.echo(
            f"  disputes  {values['disputes']} (won {values['won']}, lost {values['lost']}, missed {values['missed']}) "
            f"at threshold {values['threshold']}: P/L {values['profit']:+.2f} at bond {values['bond']:g}"
        )


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except AttestError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)

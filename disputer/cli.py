"""The `disputer` command line: run the daemon, score one assertion, show the state, evaluate a judge.

Expected failures (`AttestError`) become one line on stderr and exit code 1, as in `attest`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import click

from attest import __version__
from attest.cli.edge import run_cli
from attest.errors import AttestError, ConfigError
from disputer.evalcli import eval_

if TYPE_CHECKING:
    import procrastinate

    from attest.connect import ChainContext
    from disputer.config import DisputerConfig
    from disputer.judge import Judge

log = logging.getLogger("disputer.cli")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

NETWORK = click.option("--network", default=None, help="Network name (default: the config's default network).")
ACCOUNT = click.option("--account", default=None, help="Signing account (alias or dev:N; default [disputer] account).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
@click.version_option(__version__, prog_name="disputer")
def cli() -> None:
    """Watch llm-attest assertions, judge their answers, and dispute the wrong ones on UMA."""


class _Session:
    """The config, chain connection, store and daemon one command works with."""

    def __init__(self, stack: ExitStack, network: str | None, account: str | None, **overrides: Any) -> None:
        from attest.accounts import load_account
        from attest.config import config_path
        from attest.connect import connect
        from disputer.config import load_attest_config, load_disputer_config
        from disputer.store import DisputerStore
        from disputer.wiring import build_daemon

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


class _Stopped(BaseException):
    """SIGTERM or SIGINT during start-up. A BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop_starting(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def _exit_now(signum: int, frame: object) -> None:
    """A signal after the first, or while shutting down: leave at once, as a crash would. Every send goes through
    the outbox, so the next start reconciles whatever was in flight. (Unwinding instead would wait for judge
    threads, which cannot be interrupted.)"""
    name = signal.Signals(signum).name
    log.warning("disputer stopped at once; the next start resumes what was in flight", extra={"signal": name})
    for handler in logging.getLogger("disputer").handlers:
        handler.flush()
    os._exit(128 + signum)


@contextmanager
def _signal_handlers(handler: Any) -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stop_gracefully(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """The first SIGTERM or SIGINT lets the step in progress finish, then the loop ends; a second exits at once."""

    def requested(sig: signal.Signals) -> None:
        log.info("stop requested: finishing the step in progress", extra={"signal": sig.name})
        stop.set()
        for each in STOP_SIGNALS:
            loop.remove_signal_handler(each)
            signal.signal(each, _exit_now)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, requested, sig)


def _one_daemon(stack: ExitStack, ctx: ChainContext, address: str) -> None:
    """One daemon per (ATTEST_HOME, network) and per signer: a second one would sign the same disputes with the
    same nonces. Held until the process ends (the kernel frees it on any exit, a crash included). The signer's
    lock lives in ATTEST_HOME too, so two homes sharing a key are not refused: a dispute either finds already
    made by this account counts as done, not failed."""
    from attest.errors import DisputerRunning
    from attest.locks import ExclusiveLock, lock_dir

    home = lock_dir().parent
    for path, what in (
        (lock_dir() / f"disputer-{ctx.network.name}.lock", f"on network {ctx.network.name} with ATTEST_HOME {home}"),
        (lock_dir() / f"disputer-{ctx.chain_id}-{address.lower()}.lock", f"signing as {address} on {ctx.network.name}"),
    ):
        lock = ExclusiveLock(path)
        lock.acquire(DisputerRunning, "another disputer ({holder}) is already running " + what + "; stop it first")
        stack.callback(lock.release)


def _ready(ctx: ChainContext, config: DisputerConfig, address: str) -> None:
    """Refuse to start, in one line, on a chain without the contracts or an account without the money."""
    from attest.errors import NotReady
    from disputer.wiring import startup_checks

    found = startup_checks(ctx, config, address)
    failures = [f"{f.name}: {f.line}" for f in found if f.status == "fail"]
    if failures:
        raise NotReady(f"the disputer cannot start on {ctx.network.name}: " + "; ".join(failures))
    for f in found:
        if f.status == "warn":
            log.warning(f.line, extra={"alert": f.name})


def voting_for(ctx: ChainContext, address: str) -> dict[str, Any] | None:
    """On a DVM network, whose stake the account votes with: its own, or a staker's that made it its delegate
    (VotingV2 counts a delegate's commit and reveal for the staker once both sides have named each other)."""
    from attest.oracle import DvmOracle, oracle_for

    oracle = oracle_for(ctx)
    if not isinstance(oracle, DvmOracle):
        return None
    voting = oracle.voting
    functions = voting.contract.functions
    voter = str(functions.getVoterFromDelegate(address).call())
    named = str(functions.delegateToStaker(address).call())
    found: dict[str, Any] = {"voting_for": voter, "delegate": voter.lower() != address.lower()}
    if not found["delegate"] and int(named, 16) != 0:
        found["warning"] = (
            f"{address} accepted {named} as its staker (setDelegator) but {named} has not named it as delegate "
            "(setDelegate): it votes with its own stake until the staker does"
        )
    found["stake"] = voting.stake_of(voter)
    if found["stake"] == 0 and "warning" not in found:
        found["warning"] = f"{voter} has no stake in VotingV2: its votes count for nothing; stake or delegate first"
    return found


@cli.command()
@NETWORK
@ACCOUNT
@click.option("--dry-run", is_flag=True, default=None, help="Decide and record, send nothing.")
@click.option("--once", is_flag=True, help="One pass (poll, judge, act), then exit.")
@click.option("--metrics-port", type=int, default=None, help="Serve /metrics and /healthz on 127.0.0.1:PORT.")
@click.option("--poll-interval", "poll_interval_s", type=float, default=None, help="Seconds between polls.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Judge on the job queue ([storage] url: PostgreSQL), with this many local worker processes (0: only "
    "`disputer worker` processes elsewhere).",
)
def run(
    network: str | None,
    account: str | None,
    dry_run: bool | None,
    once: bool,
    metrics_port: int | None,
    poll_interval_s: float | None,
    workers: int | None,
) -> None:
    """Run the disputer until SIGTERM or SIGINT (JSON log lines on stderr).

    Without --workers it judges in its own threads; with it, it stays the one leader (watching, deciding,
    sending) and judge jobs go to worker processes through the queue; its local workers stop with it.

    The first signal lets the step in progress finish (its decisions recorded, its transactions mined or left in
    the outbox), then exits 0; a second signal exits at once (128 + signal number), as does one during shutdown.
    A signal during start-up exits 0 before anything is sent; one that comes while Python is still loading the
    command ends the process as the signal's own exit status (nothing was opened yet).
    """
    from attest.paths import writable_home
    from disputer.telemetry import TelemetryServer, json_logging

    writable_home("disputer run")
    handler = json_logging()
    try:
        with _signal_handlers(_stop_starting), ExitStack() as stack:
            session = _Session(
                stack, network, account, dry_run=dry_run, metrics_port=metrics_port, poll_interval_s=poll_interval_s
            )
            daemon = session.daemon
            _one_daemon(stack, session.ctx, daemon.address)
            _ready(session.ctx, session.config, daemon.address)
            _warn_if_offline(daemon.evaluator.judge)
            port = session.config.metrics_port
            if port:
                max_age_s = 3 * session.config.poll_interval_s + 30
                server = TelemetryServer(daemon.metrics, port, max_age_s=max_age_s).start()
                stack.callback(server.stop)
            if session.config.vote and (voter := voting_for(session.ctx, daemon.address)) is not None:
                warning = voter.pop("warning", None)
                log.info("voting for %s", voter["voting_for"], extra={**voter, "account": daemon.address})
                if warning:
                    log.warning(warning, extra={"alert": "voting_stake"})
            queue_app = None if workers is None else _judge_on_queue(stack, session, workers)

            async def loop() -> None:
                stop = asyncio.Event()
                _stop_gracefully(asyncio.get_running_loop(), stop)
                if once:
                    report = await daemon.step()
                    if report.errors:
                        raise AttestError("; ".join(report.errors))
                    return
                await daemon.run(stop)

            async def main() -> None:
                if queue_app is None:
                    await loop()
                    return
                async with queue_app.open_async():
                    await loop()

            # From here on the loop's handlers take over; once it ends (it puts back the defaults), shutting down
            # is only closing files: a signal then exits at once.
            try:
                asyncio.run(main())
            finally:
                for sig in STOP_SIGNALS:
                    signal.signal(sig, _exit_now)
    except _Stopped as stopped:
        log.info("disputer stopped", extra={"signal": str(stopped), "before_start": True})
    finally:
        logging.getLogger("disputer").removeHandler(handler)


def _judge_on_queue(stack: ExitStack, session: _Session, workers: int) -> procrastinate.App:
    """Hand the daemon's judging to the queue and start `workers` local workers; the queue's app, to open in the
    daemon's event loop."""
    from disputer.judgequeue import JudgeQueue, install_schema, judge_app
    from disputer.workers import queue_server, start_local_workers

    where = queue_server(session.attest_config, "disputer run --workers")
    install_schema(where)
    app = judge_app(where)
    session.daemon.judge_queue = JudgeQueue(app)
    start_local_workers(stack, workers, session.ctx.network.name)
    return app


def _warn_if_offline(judge: Judge) -> None:
    """Said at every start: a lexical judge disputes with real bonds on evidence a model would weigh better. A
    notice, not an alert: alerts are failures to act on, and this is a choice the operator may have made."""
    from disputer.judge import LlmJudge

    if not isinstance(judge, LlmJudge):
        log.warning(
            "NO LLM JUDGE CONFIGURED: judging offline with %s, a lexical check of the answers against their passages, "
            "not a model; set [llm] provider and its key to judge with a model",
            judge.label,
            extra={"notice": "offline_judge", "judge": judge.label},
        )


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
    data = score_one(assertion_id, network, account, dispute=dispute, vote=vote)
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
    click.echo(f"decision   {data['decision']['action']}: {data['decision']['reason']}")
    for results in data["txs"].values():
        for r in results:
            click.echo(f"tx         {r['kind']} {r['status']} {r['tx'] or ''} {r['error'] or ''}".rstrip())
    if data["vote"] is not None:
        click.echo(f"vote       {data['vote']}")


def score_one(
    assertion_id: str, network: str | None, account: str | None, *, dispute: bool = False, vote: bool = False
) -> dict[str, Any]:
    """`disputer score`: judge one assertion, decide by the policy and, with `dispute` / `vote`, act through the
    daemon's own jobs and outbox; what happened, as `--json` prints it. `attest ui` disputes through this too."""
    from attest.verify import ASSERTION_ID
    from disputer.daemon import StepReport
    from disputer.policy import decide
    from disputer.status import hex_or_none
    from disputer.store import made_of

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
        if dispute and (recorded is None or recorded.dry_run):  # a dry run's decision is only a preview
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
            "txs": {hex_or_none(k): [{"kind": r.row.kind, "status": r.row.status, "tx": r.tx_hash, "error": r.error}
                                     for r in v] for k, v in report.sent.items()},
            "vote": vote_outcome,
        }  # fmt: skip
    return data


@cli.command()
@click.argument("assertion_id", required=False)
@NETWORK
@click.option("--limit", type=int, default=20, show_default=True, help="Latest decisions shown.")
@JSON
def status(assertion_id: str | None, network: str | None, limit: int, as_json: bool) -> None:
    """The checkpoint, pending assertions and the latest decisions; with ASSERTION_ID, everything kept about that
    assertion: what was seen on chain, the decision, its transactions and votes (reads the state only, no node
    needed)."""
    from attest.networks import get_network
    from disputer.config import load_attest_config
    from disputer.status import hex_or_none
    from disputer.store import DisputerStore

    if assertion_id is not None:
        _status_of(assertion_id, as_json)
        return
    net = get_network(network or load_attest_config().defaults.network)
    with DisputerStore() as store:
        summary = store.status_summary(net.chain_id)
        pending = [hex_or_none(a.assertion_id) for a in store.pending(net.chain_id)]
        decided: list[dict[str, Any]] = []
        for a in reversed(store.assertions(net.chain_id, ours=None)):
            d = store.decision(a.assertion_id)
            if d is None:
                continue
            decided.append({
                "assertion": hex_or_none(a.assertion_id), "status": a.status, "action": d.action, "reason": d.reason,
                "score": d.calibrated, "judge": d.judge, "dry_run": d.dry_run, "at": d.created_at,
                "disputed_tx": hex_or_none(a.disputed_tx),
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
             "-" if d["score"] is None else f"{d['score']:.3f}", _printable(short(str(d["reason"]), 60))]
            for d in decided
        ]  # fmt: skip
        click.echo(table(["assertion", "action", "score", "reason"], rows))


def _printable(text: str) -> str:
    """Claims, rationales and errors come from strangers: escape what a terminal would act on."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _status_of(assertion_id: str, as_json: bool) -> None:
    from attest.verify import ASSERTION_ID
    from disputer.status import assertion_status
    from disputer.store import DisputerStore

    if not ASSERTION_ID.fullmatch(assertion_id):
        raise ConfigError(f"{_printable(assertion_id[:80])!r} is not an assertion id (0x and 64 hex digits)")
    with DisputerStore() as store:
        data = assertion_status(store, bytes.fromhex(assertion_id[2:]))
        path = store.path
    if data is None:
        raise ConfigError(
            f"assertion {assertion_id.lower()} is not in the disputer state at {path}: the watcher has not seen it "
            "(not ours, not confirmed yet, older than backfill_s) or ATTEST_HOME points elsewhere"
        )
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    claim = data["claim"]
    lines = [
        ("assertion", f"{data['assertion']} (chain {data['chain_id']}, {'ours' if data['ours'] else 'not ours'})"),
        ("status", data["status"]),
        ("made", f"block {data['block']} tx {data['tx']} log {data['log_index']}"),
        ("asserter", data["asserter"]),
        ("expires", f"{data['expires_at']} ({data['expiration_time']})"),
        ("bond", f"{data['bond']} of {data['currency']}"),
        ("claim", f"{claim['title']} ({claim['record']})" if claim["llm_attest"] else f"not ours: {claim['error']}"),
    ]
    if data["disputed_by"]:
        lines.append(("disputed", f"by {data['disputed_by']} in tx {data['disputed_tx']}"))
    if data["settled_tx"]:
        lines.append(("settled", f"{'true' if data['settled_resolution'] else 'false'} in tx {data['settled_tx']}"))
    decision = data["decision"]
    if decision is None:
        lines.append(("decision", "none yet"))
    else:
        shown = "-" if decision["calibrated"] is None else f"{decision['calibrated']:.3f}"
        raw = "" if decision["score"] is None else f" (raw {decision['score']:.3f})"
        dry = " (dry run)" if decision["dry_run"] else ""
        lines += [
            ("decision", f"{decision['action']}{dry}: {decision['reason']}"),
            ("score", f"{shown}{raw} by {decision['judge'] or '-'} at {decision['at']}"),
        ]
        if decision["rationale"]:
            lines.append(("rationale", decision["rationale"]))
    for old in data["superseded_decisions"]:
        lines.append(("preview", f"{old['action']} (dry run, replaced): {old['reason']}"))
    for t in data["txs"]:
        nonce = "-" if t["nonce"] is None else t["nonce"]
        error = f" error: {t['error']}" if t["error"] else ""
        lines.append(("tx", " ".join(f"{t['kind']} {t['status']} nonce {nonce} {t['tx'] or ''}".split()) + error))
    for v in data["votes"]:
        lines.append(("vote", f"round {v['round']} {v['phase']} price {v['price']}"))
    for label, value in lines:
        click.echo(f"{label:<10} {_printable(str(value))}")


cli.add_command(eval_)


@cli.command()
@NETWORK
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Judge jobs this process runs at once (default: [disputer] concurrency).",
)
def worker(network: str | None, concurrency: int | None) -> None:
    """Run judge jobs from the queue of `disputer run --workers` until SIGTERM or SIGINT (needs [storage] url:
    PostgreSQL). The first signal lets the jobs in progress finish; a job left unfinished is redone by another
    worker."""
    from disputer.telemetry import json_logging
    from disputer.workers import run_worker

    handler = json_logging()
    # The engine's warnings and errors (a job that raised, and is retried) as JSON lines too, the error on one line.
    engine = logging.getLogger("procrastinate")
    engine.addHandler(handler)
    engine.setLevel(logging.WARNING)
    engine.propagate = False
    try:
        run_worker(network, concurrency)
    finally:
        logging.getLogger("disputer").removeHandler(handler)
        engine.removeHandler(handler)


def main() -> None:
    run_cli(cli)

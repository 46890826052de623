"""`disputer run` as operators run it: the installed console script in its own process, on the devnet with real
records, a real SQLite state and the real OpenAI SDK against a fake model server. Signals stop it cleanly, its
health and metrics answer while it runs, dry-run decisions are previews a real run re-decides, and `disputer status
ASSERTION_ID` shows everything kept about one assertion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from attest.accounts import dev_account
from attest.connect import connect
from attest.ipfs.local import LocalStore
from attest.kb import KnowledgeBase
from disputer.cli import cli
from disputer.store import DisputerStore
from tests.conftest import LocalChain
from tests.support.llm_fakes import FakeModelServer, text_body
from tests.support.ports import free_port
from tests.test_disputer_daemon import KEY_ENV, REPO, WRONG, Env

DISPUTER = Path(sys.executable).parent / "disputer"  # the console script pyproject installs
STOP_BOUND_S = 10.0
START_BOUND_S = 90.0  # a cold start imports web3 and the SDKs on a busy machine


def fake_verdict(score: float, delays: tuple[float, ...] = ()) -> FakeModelServer:
    reply = json.dumps({"score": score, "rationale": f"graded {score}"})
    return FakeModelServer("openai", body=text_body("openai", reply), delays=delays)


@pytest.fixture
def kb_home(local_chain: LocalChain, monkeypatch: pytest.MonkeyPatch) -> LocalChain:
    monkeypatch.setenv(KEY_ENV, "fake-disputer-key-for-tests")
    folder = REPO / "tests" / "fixtures" / "kb" / "good"
    with KnowledgeBase() as kb:
        kb.add_path(folder)
    for path in folder.rglob("*"):
        if path.is_file():
            LocalStore().put(path.read_bytes())
    return local_chain


def write_config(env: Env, disputer: str = "") -> None:
    (env.chain.home / "config.toml").write_text(
        f'[llm]\nprovider = "openai"\nmodel = "gpt-fake"\nbase_url = "{env.fake.base_url}"\n'
        f'key_env = "{KEY_ENV}"\n\n[disputer]\nsamples = 1\nattempts = 1\nbackfill_s = 86400\nvote = false\n'
        f"settle = false\n{disputer}"
    )


def log_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def wait_for(what: str, check: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"disputer exited ({proc.returncode}) before {what}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s: {log.read_text()[-2000:]}"
        time.sleep(0.05)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def run_once(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DISPUTER), "run", "--once", *args], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_finishes_the_step_in_progress_then_exits_0(
    kb_home: LocalChain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sig: signal.Signals
) -> None:
    # The judge's first answer takes 3 s: the signal lands while the step is waiting for it.
    with fake_verdict(0.05, delays=(3.0,)) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        write_config(env)
        made = env.attest(WRONG)
        port = free_port()
        log = tmp_path / "disputer.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [str(DISPUTER), "run", "--metrics-port", str(port), "--poll-interval", "0.2"],
                env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
            try:
                started = lambda: any(line["msg"] == "disputer started" for line in log_lines(log))  # noqa: E731
                wait_for("start line", started, proc, log, START_BOUND_S)
                status, body = get(f"http://127.0.0.1:{port}/healthz")
                assert status == 200 and json.loads(body)["ok"] is True
                status, body = get(f"http://127.0.0.1:{port}/metrics")
                samples = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
                assert status == 200 and samples["disputer_up"] == 1
                wait_for("judge call", lambda: len(fake.requests) >= 1, proc, log, 30)
                assert env.disputes() == []  # mid-step: judged, nothing decided or sent yet
                proc.send_signal(sig)
                signalled = time.monotonic()
                proc.wait(timeout=STOP_BOUND_S + 20)
                took = time.monotonic() - signalled
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    lines = log_lines(log)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert took < STOP_BOUND_S, f"took {took:.1f} s to stop"
    assert [line["msg"] for line in lines if line.get("signal")] == ["stop requested: finishing the step in progress"]
    assert lines[-1]["msg"] == "disputer stopped"
    # The step in progress was finished: decided, disputed, every outbox row closed, the checkpoint kept.
    assert env.disputes() == [made.assertion_id]
    assert env.disputer_of(made) == dev_account(2).address
    with env.store() as store:
        decision = store.decision(made.assertion_id)
        assert decision is not None and decision.action == "dispute" and not decision.dry_run
        assert store.open_txs() == []
        assert {t.status for t in store.txs_for(made.assertion_id)} == {"mined"}
        assert all(t.tx_hash is not None and t.nonce is not None for t in store.txs_for(made.assertion_id))
        checkpoint = store.checkpoint(env.ctx.chain_id, env.ctx.oov3.address)
        assert checkpoint is not None and checkpoint.block_number >= made.block_number
    with pytest.raises(OSError):  # the health port is closed with the process
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_a_second_signal_exits_at_once_and_a_restart_finishes_the_work(
    kb_home: LocalChain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with fake_verdict(0.05, delays=(60.0,)) as fake:  # a judge that hangs: only the second signal ends the wait
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        write_config(env)
        made = env.attest(WRONG)
        log = tmp_path / "disputer.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [str(DISPUTER), "run", "--poll-interval", "0.2"],
                env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
            try:
                wait_for("judge call", lambda: len(fake.requests) >= 1, proc, log, START_BOUND_S)
                proc.send_signal(signal.SIGTERM)
                requested = lambda: any(line.get("signal") for line in log_lines(log))  # noqa: E731
                wait_for("stop request", requested, proc, log, 10)
                proc.send_signal(signal.SIGINT)
                signalled = time.monotonic()
                proc.wait(timeout=STOP_BOUND_S + 20)
                took = time.monotonic() - signalled
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert proc.returncode == 128 + signal.SIGINT and took < STOP_BOUND_S
        assert log_lines(log)[-1]["msg"].startswith("disputer stopped at once")
        with env.store() as store:
            assert store.decision(made.assertion_id) is None and store.open_txs() == []
        assert env.disputes() == []
        resumed = run_once()  # the fake answers at once from its second request on
        assert resumed.returncode == 0, resumed.stderr
    assert env.disputes() == [made.assertion_id]


def test_a_dry_run_previews_and_a_real_run_decides_and_acts_once(
    kb_home: LocalChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_verdict(0.05) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        write_config(env)
        made = env.attest(WRONG)
        aid = "0x" + made.assertion_id.hex()
        dry = run_once("--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "offline_judge" not in dry.stderr  # a model judges: no warning
        with env.store() as store:
            preview = store.decision(made.assertion_id)
            assert preview is not None and preview.action == "dispute" and preview.dry_run
            assert store.txs_for(made.assertion_id) == []
        assert env.disputes() == []
        assert run_once("--dry-run").returncode == 0  # a second dry run keeps its preview, judges nothing
        assert len(fake.requests) == 1

        real = run_once()
        assert real.returncode == 0, real.stderr
        assert env.disputes() == [made.assertion_id] and len(fake.requests) == 2
        restarted = run_once()
        assert restarted.returncode == 0, restarted.stderr
        assert env.disputes() == [made.assertion_id] and len(fake.requests) == 2  # final now: not judged again
        with env.store() as store:
            decision = store.decision(made.assertion_id)
            assert decision is not None and decision.action == "dispute" and not decision.dry_run
            assert store.superseded_decisions(made.assertion_id) == [preview]
        assert run_once("--dry-run").returncode == 0  # a dry run never re-decides a real decision
        with env.store() as store:
            assert store.decision(made.assertion_id) == decision
        assert len(fake.requests) == 2

        runner = CliRunner()
        shown = runner.invoke(cli, ["status", aid, "--json"], catch_exceptions=False)
        assert shown.exit_code == 0, shown.output
        data = json.loads(shown.output)
        assert data["assertion"] == aid and data["status"] == "disputed" and data["ours"] is True
        assert data["disputed_by"] == dev_account(2).address and data["tx"] == "0x" + made.tx_hash.hex()
        assert data["claim"]["llm_attest"] is True and data["claim"]["record"].startswith("ipfs://")
        assert data["decision"]["action"] == "dispute" and data["decision"]["dry_run"] is False
        assert data["decision"]["calibrated"] == pytest.approx(0.05) and data["decision"]["rationale"] == "graded 0.05"
        assert data["decision"]["judge"] == "openai-compatible:gpt-fake"
        assert [d["dry_run"] for d in data["superseded_decisions"]] == [True]
        txs = {t["kind"]: t for t in data["txs"]}
        assert txs["dispute"]["status"] == "mined" and txs["dispute"]["tx"] == data["disputed_tx"]
        assert txs["dispute"]["nonce"] is not None and txs["dispute"]["error"] is None
        assert data["votes"] == []
        text = runner.invoke(cli, ["status", aid], catch_exceptions=False).output
        assert "decision   dispute: score 0.050 < threshold 0.500" in text
        assert "preview    dispute (dry run, replaced)" in text
        assert f"tx         dispute mined nonce {txs['dispute']['nonce']} {data['disputed_tx']}" in text
        assert "rationale  graded 0.05" in text and "status     disputed" in text


def test_status_of_an_unknown_or_malformed_id_says_what_to_do(attest_home: str) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["status", "0x" + "ab" * 32])
    assert unknown.exit_code != 0
    assert "is not in the disputer state" in str(unknown.exception) and "ATTEST_HOME" in str(unknown.exception)
    bad = runner.invoke(cli, ["status", "0x12\x1b[31m"])
    assert bad.exit_code != 0 and "not an assertion id" in str(bad.exception) and "\x1b" not in str(bad.exception)


def test_status_escapes_what_strangers_wrote(attest_home: str) -> None:
    from tests.test_disputer_store import CHAIN, OOV3, made

    hostile = made(7)
    with DisputerStore() as store:
        store.upsert_made(CHAIN, hostile, b"\x01" * 32, True, oov3=OOV3)
        store.record_decision(
            hostile.assertion_id, action="undecided", reason="model said \x1b[2Jcleared", rationale="a\x07b", judge="j"
        )
    out = CliRunner().invoke(cli, ["status", "0x" + hostile.assertion_id.hex()], catch_exceptions=False).output
    assert "\x1b" not in out and "\x07" not in out
    assert "model said \\x1b[2Jcleared" in out and "claim      not ours:" in out


def test_run_says_loudly_at_start_when_no_llm_judge_is_configured(kb_home: LocalChain) -> None:
    (kb_home.home / "config.toml").write_text(
        '[llm]\nprovider = "extractive"\n\n[disputer]\nbackfill_s = 86400\nvote = false\nsettle = false\n'
    )
    done = run_once("--dry-run")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    warned = [line for line in lines if line.get("notice") == "offline_judge"]
    assert len(warned) == 1 and warned[0]["level"] == "warning" and warned[0]["judge"] == "grounding-v2"
    assert warned[0]["msg"].startswith("NO LLM JUDGE CONFIGURED: judging offline with grounding-v2")
    assert lines.index(warned[0]) == 0  # said first, before any work

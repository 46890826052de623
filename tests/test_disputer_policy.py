"""The pure dispute policy, the [disputer] config table, and the daemon's telemetry (JSON logs, Prometheus text,
/healthz over real HTTP)."""

from __future__ import annotations

import dataclasses
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from attest.chain.oov3 import NUMERICAL_TRUE
from attest.errors import ConfigError
from disputer.config import load_attest_config, load_disputer_config
from disputer.policy import Facts, batch_out_of_time, decide, judging_time_s, vote_price
from disputer.telemetry import JsonFormatter, Metrics, TelemetryServer, alert, standard_metrics
from tests.support.ports import free_port

BASE = Facts(
    failed_checks=(),
    score=0.2,
    undecided_reason=None,
    threshold=0.5,
    now=1_000,
    expiration_time=10_000,
    safety_margin_s=600,
    bond=200,
    max_bond_per_dispute=500,
    budget_left=1_000,
    balance=10_000,
    allowance=10_000,
    auto_approve=True,
    disputed_by=None,
    settled=False,
    attempts=1,
    max_attempts=3,
)


def facts(**changes: object) -> Facts:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_a_low_score_is_disputed_and_a_high_one_is_not() -> None:
    assert decide(BASE).action == "dispute" and decide(BASE).reason == "score 0.200 < threshold 0.500"
    assert decide(facts(score=0.5)).action == "none"  # at the threshold is not below it
    assert decide(facts(score=0.49999)).action == "dispute"


def test_a_failed_check_is_decisive_whatever_the_score() -> None:
    decision = decide(facts(failed_checks=("signature: not the asserter",), score=None))
    assert decision.action == "dispute" and decision.reason == "failed check signature: not the asserter"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"now": 9_400}, "within the 600s safety margin"),
        ({"now": 20_000}, "expires in 0s"),
        ({"bond": 501}, "over the cap 500"),
        ({"budget_left": 199}, "over the budget left 199"),
        ({"balance": 199}, "balance 199 is below the bond 200"),
        ({"allowance": 0, "auto_approve": False}, "auto_approve is off"),
        ({"disputed_by": "0xabc"}, "0xabc already disputed it"),
        ({"static_call_error": "Assertion already disputed"}, "would revert: Assertion already disputed"),
    ],
)
def test_every_condition_must_hold_to_dispute(changes: dict[str, object], why: str) -> None:
    decision = decide(facts(**changes))
    assert decision.action == "skip" and why in decision.reason


def test_amounts_in_reasons_are_in_the_currency_s_own_units() -> None:
    usdc = {"decimals": 6, "symbol": "USDC", "bond": 250_500_000}
    capped = decide(facts(**usdc, max_bond_per_dispute=250_000_000))
    assert capped.action == "skip" and "its bond 250.5 USDC is over the cap 250 USDC" in capped.reason
    dai = {"decimals": 18, "symbol": "DAI", "bond": 2 * 10**18, "max_bond_per_dispute": None, "budget_left": None}
    poor = decide(facts(**dai, balance=15 * 10**17))
    assert "the balance 1.5 DAI is below the bond 2 DAI" in poor.reason


def test_a_short_allowance_is_approved_first_and_dry_run_says_so() -> None:
    decision = decide(facts(allowance=0))
    assert decision.action == "dispute" and decision.approve_first
    dry = decide(facts(dry_run=True))
    assert dry.action == "dispute" and "dry run" in dry.reason and not dry.approve_first


def test_undecided_is_retried_while_time_allows_and_never_disputed() -> None:
    first = decide(facts(score=None, undecided_reason="ProviderUnavailable: 503"))
    assert first.action == "retry" and not first.final
    assert decide(facts(score=None, attempts=3)).action == "undecided"
    late = decide(facts(score=None, now=9_500, undecided_reason="timeout"))
    assert late.action == "undecided" and "never disputed" in late.reason and "timeout" in late.reason
    assert decide(facts(settled=True)).action == "skip"


def test_a_record_no_source_serves_is_fetched_again_until_the_safety_margin() -> None:
    # An IPFS outage longer than a few polls must not make "undecided" final while hours of liveness remain.
    outage = decide(facts(score=None, unavailable=True, attempts=50, undecided_reason="not found within 30 s"))
    assert outage.action == "retry"
    late = decide(facts(score=None, unavailable=True, attempts=50, now=9_500))
    assert late.action == "undecided" and "never disputed" in late.reason


def test_vote_price_follows_the_verdict() -> None:
    assert vote_price(["claim"], 0.99, 0.5) == 0
    assert vote_price([], 0.2, 0.5) == 0
    assert vote_price([], 0.7, 0.5) == NUMERICAL_TRUE
    assert vote_price([], None, 0.5) is None


def test_the_disputer_table_is_read_strictly(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[defaults]\nnetwork = "local"\n\n[disputer]\nthreshold = 1\nmax_bond_per_dispute = "250.5"\n')
    config = load_disputer_config(path, dry_run=True, samples=None)
    assert config.threshold == 1.0 and config.dry_run and config.samples == 3
    assert str(config.amount("max_bond_per_dispute")) == "250.5" and config.amount("total_budget") is None
    assert load_attest_config(path).defaults.network == "local"  # the rest of the file still loads
    path.write_text('[disputer]\nthreshold = "0.5"\n')
    with pytest.raises(ConfigError, match=r"disputer\.threshold"):
        load_disputer_config(path)
    path.write_text("[disputer]\nthresold = 0.5\n")
    with pytest.raises(ConfigError, match=r"disputer\.thresold"):
        load_disputer_config(path)
    path.write_text("[disputer]\nthreshold = 1.5\n")
    with pytest.raises(ConfigError, match="fix the \\[disputer\\] table"):
        load_disputer_config(path)


# Found by tests/test_fuzz.py: float() of a huge TOML integer raised OverflowError; tomllib's digit limit too.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[disputer]\nthreshold = " + "9" * 400, "disputer.threshold"),
        ("[disputer]\npoll_interval_s = " + "9" * 400, "disputer.poll_interval_s"),
        ("[disputer]\nsamples = " + "9" * 5000, "over 4300 digits"),
    ],
)
def test_huge_numbers_in_the_disputer_table_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_disputer_config(path)


def test_json_logs_and_alerts() -> None:
    metrics = Metrics()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("disputer.test-telemetry")
    logger.addHandler(Keep())
    alert(logger, metrics, "undecided", "no verdict", assertion="0x01", reason="the model refused")
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["level"] == "warning" and line["msg"] == "no verdict" and line["alert"] == "undecided"
    assert line["assertion"] == "0x01" and line["reason"] == "the model refused" and line["ts"].endswith("Z")
    assert metrics.value("alerts_total", {"reason": "undecided"}) == 1


def test_each_daemon_has_its_own_metrics() -> None:
    """Series live in a registry per `Metrics`: two daemons (or tests) in one process count apart, and the
    exposition parses as Prometheus text with only the declared series (no `_created` companions)."""
    first, second = standard_metrics(), standard_metrics()
    first.inc("txs_total", labels={"kind": "dispute", "result": "mined"})
    first.inc("judge_calls_total", 4)
    assert second.value("txs_total", {"kind": "dispute", "result": "mined"}) == 0
    assert first.value("judge_calls_total") == 4 and second.value("judge_calls_total") == 0
    families = {f.name: f for f in text_string_to_metric_families(first.render())}
    assert set(families) == {
        "disputer_" + n.removesuffix("_total")
        for n in ("polls_total", "assertions_seen_total", "evaluations_total", "decisions_total", "judge_calls_total",
                  "undecided_total", "txs_total", "alerts_total", "checkpoint_block", "pending_assertions", "up",
                  "judge_jobs", "judge_oldest_waiting_seconds")
    }  # fmt: skip
    assert [(s.name, s.labels, s.value) for s in families["disputer_txs"].samples] == [
        ("disputer_txs_total", {"kind": "dispute", "result": "mined"}, 1.0)
    ]


def test_metrics_and_health_over_http() -> None:
    metrics = Metrics()
    metrics.describe("txs_total", "counter", "transactions", ("kind", "result"))
    metrics.inc("txs_total", labels={"kind": "dispute", "result": "mined"})
    metrics.inc("txs_total", 2, labels={"kind": "dispute", "result": "mined"})
    metrics.set("checkpoint_block", 42)
    server = TelemetryServer(metrics, free_port(), max_age_s=60).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert "# TYPE disputer_txs_total counter" in text
        assert 'disputer_txs_total{kind="dispute",result="mined"} 3' in text
        assert "disputer_checkpoint_block 42" in text
        health = json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())
        assert health["ok"] is True and health["last_poll_ok"] is None
        metrics.last_poll_ok, metrics.last_error = 0.0, "poll failed"  # long ago
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert err.value.code == 503 and json.loads(err.value.read())["last_error"] == "poll failed"
    finally:
        server.stop()


def test_a_batch_is_judged_only_when_its_n_records_fit_before_the_safety_margin() -> None:
    # 1,000 records, 10 at a time, 2 s each: 200 s of judging on top of a 600 s margin.
    assert judging_time_s(1_000, 10, 2.0) == 200.0 and judging_time_s(1_001, 10, 2.0) == 202.0
    fits = {"safety_margin_s": 600, "concurrency": 10, "record_judge_s": 2.0}
    assert batch_out_of_time(1_000, left_s=801, **fits) is None
    why = batch_out_of_time(1_000, left_s=800, **fits)
    assert why is not None and "1,000 records takes about 200s" in why and "600s are the safety margin" in why
    # A single record's margin alone would let this one through; the batch's judging time does not.
    assert batch_out_of_time(1, left_s=800, **fits) is None
    decision = decide(facts(score=0.1, out_of_time=why))
    assert decision.action == "skip" and decision.reason == why

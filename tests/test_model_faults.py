"""Model faults end to end, for both SDKs against local fake model servers: rate limits, server errors, timeouts,
empty replies, replies that are not JSON (as text and as the HTTP body), refusals. Each is retried a bounded
number of times (the fake server counts the requests), ends in an undecided verdict within a bounded time, and
in the daemon an undecided decision that never disputes, one JSON alert line and the undecided metrics."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from attest.accounts import dev_account
from attest.config import Config
from attest.connect import connect
from attest.context import RetrievedChunk
from attest.errors import ModelRefused
from attest.llm.base import GenerationParams, RetryPolicy
from attest.llm.registry import get_provider
from attest.prompts import catalog
from disputer.judge import JUDGE_TEMPLATE, VERDICT_SCHEMA, LlmJudge
from disputer.telemetry import JsonFormatter
from disputer.wiring import build_daemon
from tests.conftest import LocalChain
from tests.support.llm_fakes import ANTHROPIC_OK, OPENAI_OK, FakeModelServer, chunk, text_body
from tests.test_disputer_daemon import HONEST, KEY_ENV, Env, kb_home, step

__all__ = ["kb_home"]  # the fixture, imported for pytest

Kind = Literal["openai", "anthropic"]
KINDS: tuple[Kind, ...] = ("openai", "anthropic")
ATTEMPTS = 3
TIMEOUT_S = 0.3
RETRY = RetryPolicy(attempts=ATTEMPTS, backoff_s=0.01, max_backoff_s=0.02, timeout_s=TIMEOUT_S)
# Where no timeout is injected the timeout is generous: a reply slowed by a busy machine must not be taken for
# a timeout and retried where a test counts the requests.
PATIENT = RetryPolicy(attempts=ATTEMPTS, backoff_s=0.01, max_backoff_s=0.02, timeout_s=5.0)
QUERY = "What happens to the base fee?"
ANSWER = "The base fee is burned [1]."
CHUNKS: tuple[RetrievedChunk, ...] = (chunk("EIP-1559 adds a base fee per gas. The base fee is burned.", 0),)
REFUSAL = "I'm sorry, but I can't help with grading this."


def refusal_body(kind: Kind) -> dict[str, Any]:
    if kind == "openai":
        message = {"role": "assistant", "content": None, "refusal": REFUSAL}
        return {**OPENAI_OK, "choices": [{**OPENAI_OK["choices"][0], "message": message}]}
    # A refusal can stop a reply part-way: the partial text, even one that parses as a verdict, must not count.
    partial = [{"type": "text", "text": '{"score": 1, "rationale": "fine"}'}]
    return {**ANTHROPIC_OK, "content": partial, "stop_reason": "refusal"}


@dataclass(frozen=True)
class Fault:
    name: str
    retried: bool  # whether the provider's bounded retry loop applies
    says: str  # what the undecided reason names

    def server(self, kind: Kind, n: int) -> FakeModelServer:
        """A fake that shows this fault on each of its first `n` requests (and would answer well after them)."""
        match self.name:
            case "429":
                return FakeModelServer(kind, statuses=[429] * n, retry_after="0")
            case "500":
                return FakeModelServer(kind, statuses=[500] * n)
            case "timeout":
                return FakeModelServer(kind, delays=[TIMEOUT_S * 10] * n)
            case "empty":
                return FakeModelServer(kind, texts=[""] * n)
            case "prose":
                return FakeModelServer(kind, texts=["The answer looks right to me: score 1."] * n)
            case "not-json-body":
                return FakeModelServer(kind, raw_body=b"<html><body>502 upstream</body></html>")
            case "refusal":
                return FakeModelServer(kind, body=refusal_body(kind))
        raise AssertionError(self.name)


FAULTS = (
    Fault("429", True, "RateLimited: "),
    Fault("500", True, "ProviderUnavailable: "),
    Fault("timeout", True, f"no answer within {TIMEOUT_S:g}s"),
    Fault("empty", False, "returned no answer text"),
    Fault("prose", False, "not a verdict: the reply is not a JSON object"),
    Fault("not-json-body", False, "a response we cannot read"),
    Fault("refusal", False, "ModelRefused: "),
)
CASES = [(kind, fault) for kind in KINDS for fault in FAULTS]
IDS = [f"{kind}-{fault.name}" for kind, fault in CASES]


def retry_for(fault: Fault) -> RetryPolicy:
    return RETRY if fault.name == "timeout" else PATIENT


def judge_for(kind: Kind, fake: FakeModelServer, samples: int, retry: RetryPolicy = PATIENT) -> LlmJudge:
    provider = get_provider(kind, base_url=fake.base_url, api_key="fake-judge-key-for-tests", retry=retry)
    return LlmJudge(provider, "judge-model", samples=samples)


def bound_s(samples: int, fault: Fault) -> float:
    """A generous bound: every request timing out, every backoff at its ceiling, plus slack for a busy machine
    (with the patient timeout nothing waits for it: the other faults answer at once)."""
    per_sample = (ATTEMPTS if fault.retried else 1) * (TIMEOUT_S + RETRY.max_backoff_s)
    return samples * per_sample + 5.0


@pytest.fixture(autouse=True)
def no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("kind", "fault"), CASES, ids=IDS)
def test_a_model_fault_is_retried_a_bounded_number_of_times_then_undecided(kind: Kind, fault: Fault) -> None:
    samples = 3
    with fault.server(kind, 100) as fake:
        started = time.monotonic()
        verdict = judge_for(kind, fake, samples, retry_for(fault)).judge(QUERY, CHUNKS, ANSWER)
        elapsed = time.monotonic() - started
        seen = len(fake.requests)
    assert verdict.score is None and verdict.calibrated_score is None and verdict.samples == ()
    assert verdict.undecided_reason is not None
    assert verdict.undecided_reason.startswith(f"0 of {samples} samples gave a valid verdict, 2 needed: ")
    assert fault.says in verdict.undecided_reason
    assert seen == samples * (ATTEMPTS if fault.retried else 1)
    assert elapsed < bound_s(samples, fault)


@pytest.mark.parametrize("kind", KINDS)
def test_a_transient_fault_that_clears_within_the_retries_still_decides(kind: Kind) -> None:
    # Two bad answers then good ones: each sample's retries ride them out (parallel=1 keeps the order fixed).
    reply = json.dumps({"score": 0.8, "rationale": "supported by [1]"})
    with FakeModelServer(kind, statuses=[500, 429], body=text_body(kind, reply)) as fake:
        provider = get_provider(kind, base_url=fake.base_url, api_key="fake-judge-key-for-tests", retry=PATIENT)
        verdict = LlmJudge(provider, "judge-model", samples=3, parallel=1).judge(QUERY, CHUNKS, ANSWER)
        assert len(fake.requests) == 5
    assert verdict.score == 0.8 and verdict.samples == (0.8, 0.8, 0.8)


@pytest.mark.parametrize("kind", KINDS)
def test_a_refusal_is_never_an_answer_for_attest_ask_either(kind: Kind) -> None:
    template = catalog.get(JUDGE_TEMPLATE)
    with FakeModelServer(kind, body=refusal_body(kind)) as fake:
        provider = get_provider(kind, base_url=fake.base_url, api_key="fake-judge-key-for-tests", retry=PATIENT)
        with pytest.raises(ModelRefused, match="refused to answer") as caught:
            provider.answer(
                QUERY, CHUNKS, template, GenerationParams("judge-model"), graded=ANSWER, output=VERDICT_SCHEMA
            )
        assert len(fake.requests) == 1
    assert "fake-judge-key-for-tests" not in str(caught.value)
    if kind == "openai":
        assert REFUSAL in str(caught.value)  # the model's own words, bounded and scrubbed, say why


# -- in the daemon -----------------------------------------------------------------------------------------
@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The disputer's log lines as the daemon writes them (telemetry's JSON formatter)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("disputer")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.mark.parametrize(("kind", "fault"), CASES, ids=IDS)
def test_the_daemon_never_disputes_on_a_model_fault_and_alerts_once(
    kind: Kind, fault: Fault, kb_home: LocalChain, monkeypatch: pytest.MonkeyPatch, json_log: io.StringIO
) -> None:
    # A wrong answer: had the judge answered it would score low and be disputed.
    with fault.server(kind, 100) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        made = env.attest("The wick never needs trimming; replace the whole lamp once a year.")
        honest = env.attest(HONEST, "What should the lens be polished with?")
        aid = "0x" + made.assertion_id.hex()
        with env.store() as store:
            config = env.config(samples=1, attempts=2, vote=False, settle=False)
            daemon = build_daemon(
                env.ctx, store, config, Config(), dev_account(2), judge=judge_for(kind, fake, 1, retry_for(fault))
            )
            started = time.monotonic()
            first = step(daemon)
            second = step(daemon)
            elapsed = time.monotonic() - started
            third = step(daemon)
            decision = store.decision(made.assertion_id)
        seen = len(fake.requests)
    both = {made.assertion_id, honest.assertion_id}
    assert first.errors == second.errors == []
    assert set(first.retried) == both and first.decisions == {}  # attempt 1 of 2: evaluated again next poll
    assert second.decisions == {made.assertion_id: "undecided", honest.assertion_id: "undecided"}
    assert third.evaluated == []  # a final undecided decision is not judged again
    assert seen == 2 * 2 * (ATTEMPTS if fault.retried else 1)  # two answers, two polls, one sample each
    assert elapsed < 2 * bound_s(2, fault)
    assert decision is not None and decision.action == "undecided" and decision.score is None
    assert "never disputed" in decision.reason and fault.says in decision.reason
    assert env.disputes() == [] and env.disputer_of(made) == "0x0000000000000000000000000000000000000000"
    metrics = daemon.metrics
    assert metrics.value("undecided_total") == 4
    assert metrics.value("evaluations_total", {"outcome": "undecided"}) == 4
    assert metrics.value("alerts_total", {"reason": "undecided"}) == 2
    assert metrics.value("decisions_total", {"action": "undecided"}) == 2
    assert metrics.value("decisions_total", {"action": "dispute"}) == 0
    exposed = {(s.name, tuple(s.labels.items())): s.value
               for f in text_string_to_metric_families(metrics.render()) for s in f.samples}  # fmt: skip
    assert exposed[("disputer_undecided_total", ())] == 4
    assert exposed[("disputer_alerts_total", (("reason", "undecided"),))] == 2
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    alerts = [line for line in lines if line.get("alert") == "undecided"]
    assert len(alerts) == 2 and {a["assertion"] for a in alerts} == {aid, "0x" + honest.assertion_id.hex()}
    ours = next(a for a in alerts if a["assertion"] == aid)
    assert ours["level"] == "warning" and ours["action"] == "undecided" and ours["score"] is None
    assert fault.says in ours["reason"]
    retried = [line for line in lines if line["msg"] == "evaluation retried later" and line["assertion"] == aid]
    assert len(retried) == 1 and "attempt 1 of 2" in retried[0]["reason"]
    assert KEY_ENV not in json_log.getvalue() and "fake-judge-key-for-tests" not in json_log.getvalue()


def test_undecided_is_retried_only_while_time_allows(
    kb_home: LocalChain, monkeypatch: pytest.MonkeyPatch, json_log: io.StringIO
) -> None:
    # With many attempts left but the expiry inside the safety margin, the first undecided verdict is final.
    with FakeModelServer("openai", statuses=[500] * 100) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        made = env.attest("The wick never needs trimming.")
        env.chain.advance(7200 - 300)
        with env.store() as store:
            config = env.config(samples=1, attempts=10, vote=False, settle=False, safety_margin_s=600)
            daemon = build_daemon(env.ctx, store, config, Config(), dev_account(2), judge=judge_for("openai", fake, 1))
            report = step(daemon)
            assert report.decisions == {made.assertion_id: "undecided"} and report.retried == []
    assert len(fake.requests) == ATTEMPTS
    assert daemon.metrics.value("alerts_total", {"reason": "undecided"}) == 1

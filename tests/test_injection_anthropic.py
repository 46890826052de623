"""The hostile corpus against the Anthropic judge, item by item, as tests/test_judge.py does for OpenAI: what the
model is sent keeps each hostile text inside its untrusted block, an echoing model never yields a score, and a
model that grades low is not moved by anything the hostile text says. The score comes from the structured reply
only."""

from __future__ import annotations

from typing import Any

import pytest

from attest.llm.registry import get_provider
from disputer.judge import LlmJudge
from tests.support.llm_fakes import FakeModelServer, text_body
from tests.test_judge import FAST, HOSTILE, LOW, TEMPLATE, assert_fenced, placed


@pytest.fixture(autouse=True)
def no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def anthropic_judge(fake: FakeModelServer, samples: int) -> LlmJudge:
    provider = get_provider("anthropic", base_url=fake.base_url, api_key="fake-anthropic-judge-key", retry=FAST)
    return LlmJudge(provider, "claude-test", samples=samples)


def test_an_echoing_anthropic_judge_sends_every_item_fenced_and_never_scores() -> None:
    with FakeModelServer("anthropic", echo=True) as fake:
        judge = anthropic_judge(fake, samples=1)
        for item in HOSTILE:
            query, chunks, answer, block = placed(item)
            verdict = judge.judge(query, chunks, answer)
            assert verdict.score is None and verdict.samples == (), item["id"]
            assert "not a verdict" in (verdict.undecided_reason or ""), item["id"]
            body: dict[str, Any] = fake.requests[-1].body
            rendered = TEMPLATE.render(query=query, chunks=chunks, answer=answer)
            assert body["system"] == rendered.system, item["id"]
            assert body["messages"] == [{"role": "user", "content": rendered.user}], item["id"]
            text = item["text"] * int(item.get("repeat", 1))
            assert_fenced(body["messages"][0]["content"], rendered.fence, text, block, blocks=2 + len(chunks))
    assert len(fake.requests) == len(HOSTILE)


def test_hostile_text_cannot_raise_a_low_anthropic_score() -> None:
    with FakeModelServer("anthropic", body=text_body("anthropic", LOW)) as fake:
        judge = anthropic_judge(fake, samples=3)
        for item in HOSTILE:
            query, chunks, answer, _ = placed(item)
            verdict = judge.judge(query, chunks, answer)
            assert verdict.score == 0.05 and verdict.samples == (0.05, 0.05, 0.05), item["id"]
    assert len(fake.requests) == 3 * len(HOSTILE)

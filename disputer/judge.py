"""The judge: how correct an attested answer is, 0..1, given its query and cited context.

Everything a judge reads comes from someone else's record, so everything is hostile. An LLM judge gets it only
inside the fenced untrusted blocks of the shipped `judge-correctness@1` template, and its score is taken only
from a reply that is exactly one JSON object `{score, rationale}`: a score is never fished out of free text,
because that is how an answer that says "score: 1" would win. A judge never raises for a model's faults (errors
after the provider's bounded retries, refusals, malformed replies): it returns an UNDECIDED verdict with the
reason, and the caller's policy does nothing with it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, NoReturn, Protocol

from attest.context import RetrievedChunk
from attest.errors import JudgeError, JudgeOutputError, ModelError, PromptError
from attest.jsonsafe import encodable, nested_deeper_than
from attest.llm.base import GenerationParams, OutputSchema, Provider
from attest.llm.registry import can_grade
from attest.prompts import catalog
from disputer.calibration import CalibrationMap

JUDGE_TEMPLATE = "judge-correctness@1"
MAX_REPLY_CHARS = 8_000  # a verdict is a score and a sentence or two; anything longer is not one
MAX_RATIONALE_CHARS = 2_000
MAX_SAMPLES = 15
MAX_REASON_CHARS = 600
DEFAULT_MAX_TOKENS = 512
# Structured output where the provider supports it. No numeric bounds in the schema: not every provider accepts
# them, and parse_judge_output checks the range anyway.
VERDICT_SCHEMA = OutputSchema(
    name="verdict",
    schema={
        "type": "object",
        "properties": {"score": {"type": "number"}, "rationale": {"type": "string"}},
        "required": ["score", "rationale"],
        "additionalProperties": False,
    },
)
# The whole reply wrapped in one Markdown code fence, which models add even when told not to. Only a fence
# around everything is accepted; text before or after it is still refused.
_WHOLE_FENCE = re.compile(r"\A```(?:json)?[ \t]*\r?\n(?P<body>.*?)\r?\n?```\Z", re.DOTALL)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """A judge's score for one answer. `score` is None when the judge could not decide (`undecided_reason` says
    why); the policy must not act on an undecided verdict."""

    score: float | None  # 0 wrong .. 1 correct; the median of `samples` for an LLM judge
    rationale: str
    samples: tuple[float, ...]  # the valid raw scores, in the order they arrived
    judge: str  # "openai:gpt-4.1-mini", "grounding-v1"
    template: str | None  # id@version of the prompt an LLM judge was given; None for deterministic judges
    template_sha256: str | None
    undecided_reason: str | None
    latency_ms: float
    calibrated_score: float | None  # `score` through the judge's calibration map; `score` itself without one

    def __post_init__(self) -> None:
        if (self.score is None) != (self.undecided_reason is not None):
            raise ValueError("a verdict has a score or a reason it is undecided, never both or neither")
        if (self.score is None) != (self.calibrated_score is None):
            raise ValueError("a verdict's calibrated score is present exactly when its score is")
        for value in (self.score, self.calibrated_score, *self.samples):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"verdict scores lie in [0, 1], not {value}")

    @property
    def decided(self) -> bool:
        return self.score is not None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (for the disputer's state and logs)."""
        data = asdict(self)
        data["samples"] = list(self.samples)
        return data


class Judge(Protocol):
    @property
    def label(self) -> str:
        """What every verdict names as its judge."""
        ...

    def judge(self, query: str, chunks: Sequence[RetrievedChunk], answer: str) -> Verdict: ...


# -- the only way a score gets out of a model's reply ----------------------------------------------------
def parse_judge_output(text: str) -> tuple[float, str]:
    """(score, rationale) from a reply that is exactly one JSON object `{"score": 0..1, "rationale": "..."}`
    (optionally the whole of it inside one ```json fence). Anything else raises JudgeOutputError."""
    if len(text) > MAX_REPLY_CHARS:
        raise JudgeOutputError(f"the reply is {len(text):,} characters; a verdict is at most {MAX_REPLY_CHARS:,}")
    body = text.strip()
    if fenced := _WHOLE_FENCE.match(body):
        body = fenced["body"].strip()
    if not body.startswith("{"):
        raise JudgeOutputError("the reply is not a JSON object (a refusal or prose)")
    if nested_deeper_than(body, 1):
        raise JudgeOutputError("the reply nests JSON values; a verdict is one flat object")
    try:
        data = json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except JudgeOutputError:
        raise
    except (ValueError, RecursionError) as err:  # JSONDecodeError, extra data, integers past the digit limit
        raise JudgeOutputError(f"the reply is not one JSON object ({_short(str(err))})") from None
    if not isinstance(data, dict):
        raise JudgeOutputError("the reply is not a JSON object")
    if set(data) != {"score", "rationale"}:
        raise JudgeOutputError(f"a verdict has exactly the keys score and rationale, not {_keys(data)}")
    score, rationale = data["score"], data["rationale"]
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise JudgeOutputError(f"score must be a number, not {type(score).__name__}")
    score = float(score)
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise JudgeOutputError(f"score must lie between 0 and 1, not {score}")
    if not isinstance(rationale, str) or not rationale.strip():
        raise JudgeOutputError("rationale must be a non-empty string")
    if len(rationale) > MAX_RATIONALE_CHARS:
        raise JudgeOutputError(f"rationale is longer than {MAX_RATIONALE_CHARS:,} characters")
    return score, rationale.strip()


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two "score" keys would let two readers see two different scores in the same reply.
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise JudgeOutputError("the reply repeats a key")
    return dict(pairs)


def _no_constant(name: str) -> NoReturn:
    raise JudgeOutputError(f"the reply contains {name}, which is not a JSON number")


def _keys(data: dict[str, Any]) -> str:
    return _short(", ".join(sorted(json.dumps(k) for k in data)) or "none", 120)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the LLM judge -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sample:
    score: float | None
    rationale: str  # the rationale when valid, else why the sample does not count


class LlmJudge:
    """`samples` independent gradings by a model; the verdict is the median of the valid ones, or undecided when
    fewer than a majority of them are valid."""

    def __init__(
        self,
        provider: Provider,
        model: str,
        *,
        samples: int = 3,
        temperature: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        calibration: CalibrationMap | None = None,
        parallel: int = 3,
    ) -> None:
        if not 1 <= samples <= MAX_SAMPLES:
            raise JudgeError(f"the judge takes 1 to {MAX_SAMPLES} samples per answer, not {samples}")
        if parallel < 1:
            raise JudgeError("the judge needs parallel >= 1 (requests in flight per answer)")
        if not can_grade(provider.name):
            raise JudgeError(f"the {provider.name} provider cannot grade; use GroundingJudge to judge offline")
        self.provider = provider
        self.params = GenerationParams(model, temperature=temperature, max_tokens=max_tokens)
        self.samples = samples
        self.parallel = min(parallel, samples)
        self.template = catalog.get(JUDGE_TEMPLATE)
        provider_label = getattr(provider, "label", None) or provider.name
        self._label = f"{provider_label}:{model}"
        self.calibration = check_calibration(calibration, self._label)

    @property
    def label(self) -> str:
        return self._label

    @property
    def quorum(self) -> int:
        return self.samples // 2 + 1

    def __repr__(self) -> str:
        return f"LlmJudge({self._label!r}, samples={self.samples})"

    def judge(self, query: str, chunks: Sequence[RetrievedChunk], answer: str) -> Verdict:
        started = time.perf_counter()
        common = {"judge": self._label, "template": self.template.ref, "template_sha256": self.template.sha256}
        texts = [query, answer, *(part for c in chunks for part in (c.source, c.text, *c.heading_path))]
        if not all(encodable(t) for t in texts):
            # JSON escapes can smuggle lone surrogates into a str; no request can carry them.
            reason = "the query, answer or context holds lone surrogates (not Unicode text); nothing was sent"
            return Verdict(None, "", (), undecided_reason=reason, latency_ms=0.0, calibrated_score=None, **common)
        if self.parallel == 1:
            results = [self._sample(query, chunks, answer) for _ in range(self.samples)]
        else:
            with ThreadPoolExecutor(self.parallel, thread_name_prefix="judge-sample") as pool:
                results = list(pool.map(lambda _: self._sample(query, chunks, answer), range(self.samples)))
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        valid = [r for r in results if r.score is not None]
        scores = tuple(r.score for r in valid if r.score is not None)
        if len(valid) < self.quorum:
            failures = list(dict.fromkeys(r.rationale for r in results if r.score is None))
            reason = _short(
                f"{len(valid)} of {self.samples} samples gave a valid verdict, {self.quorum} needed: "
                + "; ".join(failures),
                MAX_REASON_CHARS,
            )
            log.info("%s: undecided: %s", self._label, reason)
            return Verdict(
                None, "", scores, undecided_reason=reason, latency_ms=latency_ms, calibrated_score=None, **common
            )
        median = float(statistics.median(scores))
        # The rationale of the sample nearest the median, so the words match the number.
        nearest = min(valid, key=lambda r: abs((r.score or 0.0) - median))
        return Verdict(
            median,
            nearest.rationale,
            scores,
            undecided_reason=None,
            latency_ms=latency_ms,
            calibrated_score=self.calibration.apply(median) if self.calibration else median,
            **common,
        )

    def _sample(self, query: str, chunks: Sequence[RetrievedChunk], answer: str) -> _Sample:
        try:
            reply = self.provider.answer(
                query, chunks, self.template, self.params, graded=answer, output=VERDICT_SCHEMA
            )
            score, rationale = parse_judge_output(reply.text)
        except JudgeOutputError as err:
            return _Sample(None, f"not a verdict: {err}")
        except (ModelError, PromptError) as err:
            # Messages from our providers are already scrubbed of keys; the class name tells retry from config.
            return _Sample(None, f"{type(err).__name__}: {_short(str(err), 300)}")
        return _Sample(score, rationale)


def check_calibration(calibration: CalibrationMap | None, label: str) -> CalibrationMap | None:
    if calibration is not None and calibration.judge != label:
        raise JudgeError(
            f"the calibration map was fitted for judge {calibration.judge!r}, not {label!r}; "
            "fit one for this judge (disputer eval) or run without calibration"
        )
    return calibration


def undecided(judge: str, reason: str, latency_ms: float = 0.0) -> Verdict:
    """An undecided verdict from a judge that uses no template."""
    return Verdict(None, "", (), judge, None, None, reason, latency_ms, None)

"""`attest ask --compare`: two answers to one query from one retrieved context, each a signed, pinned record of
its own (asserted only when asked to), linked in the ledger as a pair that `attest rank` ranks.

The second answer comes from `vs_model` / `vs_provider`, or, with neither, is a second sample of the same model.
Both asks retrieve with the same query, k and knowledge base; the records' contexts are compared afterwards, so a
pair never links answers that saw different passages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from attest.config import Config, load_config
from attest.errors import PreferenceError
from attest.flow.ask import AskRequest, AskResult, Progress, ask, quiet
from attest.flow.pairs import create_pair
from attest.ledger import Ledger
from attest.record.codec import decode_record


@dataclass(frozen=True)
class CompareResult:
    pair_id: int
    first: AskResult
    second: AskResult


def compare(
    request: AskRequest,
    *,
    vs_model: str | None = None,
    vs_provider: str | None = None,
    config: Config | None = None,
    progress: Progress = quiet,
    passphrase_prompt: Callable[[str], str] | None = None,
) -> CompareResult:
    if request.answer is not None:
        raise PreferenceError("--compare asks a model twice; it cannot take --answer (ask without it)")
    config = config or load_config()
    second_request = replace(request, model=vs_model or request.model, provider=vs_provider or request.provider)
    first = ask(request, config=config, progress=progress, passphrase_prompt=passphrase_prompt)
    second = ask(second_request, config=config, progress=progress, passphrase_prompt=passphrase_prompt)
    one, two = decode_record(first.attestation.record), decode_record(second.attestation.record)
    if [c.sha256 for c in one.context] != [c.sha256 for c in two.context] or one.corpus != two.corpus:
        raise PreferenceError(
            f"attestations #{first.attestation.id} and #{second.attestation.id} saw different passages (the "
            "knowledge base changed between them), so they were not paired; ask --compare again"
        )
    with Ledger() as ledger:
        pair_id = create_pair(ledger, first.attestation.id, second.attestation.id)
    return CompareResult(pair_id, first, second)

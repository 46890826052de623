"""The offline extractive provider: deterministic, exact quotes with valid [n] citations, honest metadata."""

from __future__ import annotations

import dataclasses
import re
import socket
from pathlib import Path

import pytest

from attest import __version__
from attest.errors import ModelError
from attest.llm.base import GenerationParams, SentParams, model_metadata_for_record
from attest.llm.extractive import EXTRACTIVE_MODEL, NO_CONTEXT, NO_MATCH, ExtractiveProvider
from attest.prompts import get
from attest.record import validate_record
from tests.support.llm_fakes import CHUNKS, chunk, full_record

EIPS = Path("/work/shared/corpus/eips")
QUERY = "What happens to the base fee?"
PARAMS = GenerationParams(EXTRACTIVE_MODEL)
TEMPLATE = get("rag-answer@1")
QUOTE = re.compile(r'^- "(?P<text>.*)" \[(?P<n>\d+)\]$')


def quotes(text: str) -> list[tuple[str, int]]:
    lines = text.splitlines()[1:]
    found = [QUOTE.match(line) for line in lines]
    assert all(found), lines
    return [(m["text"], int(m["n"])) for m in found if m]


def test_same_input_gives_the_same_answer_and_metadata_apart_from_latency() -> None:
    first = ExtractiveProvider().answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    copies = [dataclasses.replace(c) for c in CHUNKS]
    second = ExtractiveProvider().answer(QUERY, copies, TEMPLATE, PARAMS)
    assert first.text == second.text and first.citations == second.citations
    assert dataclasses.replace(first.metadata, latency_ms=0) == dataclasses.replace(second.metadata, latency_ms=0)
    assert model_metadata_for_record(first) == model_metadata_for_record(second)


def test_quotes_are_exact_sentences_of_the_cited_passage_best_match_first() -> None:
    answer = ExtractiveProvider().answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    found = quotes(answer.text)
    assert found[0] == ("The base fee is burned rather than paid to the miner.", 1)
    for text, n in found:
        assert text in CHUNKS[n - 1].text
    assert answer.citations == tuple(sorted({n for _, n in found}))
    assert all(1 <= n <= len(CHUNKS) for n in answer.citations)
    assert answer.metadata.finish_reason == "stop"


def test_citations_come_from_the_quotes_not_from_brackets_inside_them() -> None:
    passages = [chunk("Gas refunds are capped as described in [7] and [2, 9]. The cap is one fifth.")]
    answer = ExtractiveProvider().answer("How are gas refunds capped?", passages, TEMPLATE, PARAMS)
    assert "[7]" in answer.text and answer.citations == (1,)


def test_only_the_top_passages_are_quoted() -> None:
    passages = [chunk(f"Filler sentence number {i} about nothing.", i) for i in range(3)]
    passages.append(chunk("The base fee is burned by the protocol.", 3))
    assert ExtractiveProvider(top_passages=3).answer(QUERY, passages, TEMPLATE, PARAMS).text == NO_MATCH
    wider = ExtractiveProvider(top_passages=4).answer(QUERY, passages, TEMPLATE, PARAMS)
    assert wider.citations == (4,)


def test_no_passages_and_no_shared_words_are_said_plainly() -> None:
    empty = ExtractiveProvider().answer(QUERY, [], TEMPLATE, PARAMS)
    assert (empty.text, empty.citations, empty.metadata.finish_reason) == (NO_CONTEXT, (), "no_context")
    unrelated = ExtractiveProvider().answer("zebra migration routes?", CHUNKS[:2], TEMPLATE, PARAMS)
    assert (unrelated.text, unrelated.citations, unrelated.metadata.finish_reason) == (NO_MATCH, (), "no_match")


def test_code_blocks_tables_and_markup_are_not_quoted() -> None:
    text = "## Base fee\n```python\nbase_fee = burn(base_fee) # the base fee is burned here\n```\n| base | fee |\n" + (
        "- The base fee is burned at the end of each block."
    )
    found = quotes(ExtractiveProvider().answer(QUERY, [chunk(text)], TEMPLATE, PARAMS).text)
    assert found == [("The base fee is burned at the end of each block.", 1)]


def test_max_tokens_bounds_the_answer_and_max_quotes_the_count() -> None:
    long_passage = chunk(" ".join(f"The base fee rule number {i} says the base fee is burned." for i in range(40)))
    bounded = ExtractiveProvider().answer(
        QUERY, [long_passage], TEMPLATE, GenerationParams(EXTRACTIVE_MODEL, max_tokens=40)
    )
    assert len(bounded.text) <= 40 * 4 and len(quotes(bounded.text)) >= 1
    assert len(quotes(ExtractiveProvider(max_quotes=2).answer(QUERY, [long_passage], TEMPLATE, PARAMS).text)) == 2


def test_metadata_names_the_extractive_provider_honestly_and_records_params() -> None:
    params = GenerationParams(EXTRACTIVE_MODEL, temperature=0.7, top_p=0.5, max_tokens=200, seed=3)
    meta = ExtractiveProvider().answer(QUERY, CHUNKS, TEMPLATE, params).metadata
    assert (meta.provider, meta.requested_model, meta.returned_model) == (
        "extractive",
        "extractive-v1",
        "extractive-v1",
    )
    assert meta.sdk is not None and (meta.sdk.name, meta.sdk.version) == ("llm-attest", __version__)
    assert meta.params == SentParams(0.7, 0.5, 200, 3)
    assert meta.template is None and meta.template_sha256 is None  # no model read a prompt
    assert meta.usage is None and meta.response_id is None and meta.endpoint is None and meta.attempts == 1


def test_an_extractive_answer_is_a_valid_record_with_a_null_prompt() -> None:
    answer = ExtractiveProvider().answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    record = validate_record(full_record(QUERY, CHUNKS, answer))
    assert record.prompt is None and record.model.provider == "extractive"
    assert record.model.license == "AGPL-3.0-or-later"


def test_another_model_name_is_refused() -> None:
    with pytest.raises(ModelError, match="one model, extractive-v1"):
        ExtractiveProvider().answer(QUERY, CHUNKS, TEMPLATE, GenerationParams("gpt-4o"))


def test_it_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the extractive provider opened a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert ExtractiveProvider().answer(QUERY, CHUNKS, TEMPLATE, PARAMS).citations


@pytest.mark.skipif(not EIPS.is_dir(), reason=f"the EIP corpus is not at {EIPS}")
def test_on_real_eips_every_quote_is_verbatim_and_deterministic() -> None:
    text = (EIPS / "eip-1559.md").read_text(encoding="utf-8")
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    passages = [chunk("\n\n".join(paragraphs[i : i + 4]), i // 4) for i in range(0, len(paragraphs), 4)][:8]
    provider = ExtractiveProvider(top_passages=8)
    answer = provider.answer("Is the base fee burned?", passages, TEMPLATE, PARAMS)
    found = quotes(answer.text)
    assert found and any("burned" in quote for quote, _ in found)
    for quote, n in found:
        assert quote.removesuffix("…") in passages[n - 1].text
    assert provider.answer("Is the base fee burned?", passages, TEMPLATE, PARAMS).text == answer.text


def test_front_matter_and_link_lines_are_never_quoted() -> None:
    text = (
        "---\neip: 3855\ntitle: PUSH0 instruction\ndiscussions-to: https://ethereum-magicians.org/t/eip-3855-push0/7014\n"
        "---\n\n## Abstract\n\nIntroduce the `PUSH0` (`0x5f`) instruction, which pushes the constant value 0 onto the "
        "stack.\n\nSee [the PUSH0 discussion](https://example.org/push0) and https://example.org/push0-notes\n"
    )
    answer = ExtractiveProvider().answer(
        "What does PUSH0 do?", [chunk(text, source="eips/eip-3855.md")], TEMPLATE, PARAMS
    )
    assert quotes(answer.text) == [
        ("Introduce the `PUSH0` (`0x5f`) instruction, which pushes the constant value 0 onto the stack.", 1)
    ]


def test_sentences_are_joined_across_hard_line_breaks_and_never_cut() -> None:
    text = (
        "Introduce a new transaction format for blob-carrying transactions which contain a large amount of data that\n"
        "cannot be accessed by EVM execution, but whose commitment can be accessed.\n"
        "The blob format is described in the specification of the blob carrying"  # cut by the chunk's end
    )
    found = quotes(
        ExtractiveProvider().answer("What do blob transactions contain?", [chunk(text)], TEMPLATE, PARAMS).text
    )
    assert found == [
        (
            "Introduce a new transaction format for blob-carrying transactions which contain a large amount of data "
            "that cannot be accessed by EVM execution, but whose commitment can be accessed.",
            1,
        )
    ]


def test_code_is_quoted_only_when_the_question_asks_for_code() -> None:
    text = "The base fee is burned.\n\n```python\nburn(base_fee)  # the base fee is burned here\n```\n"
    plain = quotes(ExtractiveProvider().answer("Is the base fee burned?", [chunk(text)], TEMPLATE, PARAMS).text)
    assert plain == [("The base fee is burned.", 1)]
    code = ExtractiveProvider().answer("Show the code that burns the base fee", [chunk(text)], TEMPLATE, PARAMS)
    assert "burn(base_fee)" in code.text


def test_a_named_eip_is_answered_from_its_own_text_or_not_at_all() -> None:
    other = chunk("It does not modify existing ERC-20 interfaces or their token balances.", 0, "eips/eip-8182.md")
    stub = chunk(
        "---\neip: 20\nstatus: Moved\n---\n\nThis file was moved to https://x.org/erc-20.md\n", 1, "eips/eip-20.md"
    )
    answer = ExtractiveProvider().answer("What is ERC-20?", [stub, other], TEMPLATE, PARAMS)
    assert (answer.text, answer.citations, answer.metadata.finish_reason) == (NO_MATCH, (), "no_match")
    assert answer.text.startswith("The knowledge base does not answer this")


def test_a_sentence_holding_too_few_of_the_key_terms_does_not_answer() -> None:
    passage = chunk("The gas limit of a block is set by the validator that proposes it.")
    answer = ExtractiveProvider().answer("How is the blob gas price computed for rollups?", [passage], TEMPLATE, PARAMS)
    assert answer.text == NO_MATCH


@pytest.mark.skipif(not EIPS.is_dir(), reason=f"the EIP corpus is not at {EIPS}")
def test_the_default_question_is_answered_first_by_eip_1559_saying_the_base_fee_is_burned(tmp_path: Path) -> None:
    from attest.kb import KnowledgeBase

    question = "What does EIP-1559 do with the base fee?"
    with KnowledgeBase(tmp_path / "kb.sqlite3") as kb:
        kb.add_path(EIPS)
        passages = kb.search(question, k=5)
        answer = ExtractiveProvider().answer(question, passages, TEMPLATE, PARAMS)
        first, n = quotes(answer.text)[0]
        assert passages[n - 1].source.endswith("/eip-1559.md"), answer.text
        assert re.search(r"base fee .*burned", first), answer.text
        for question in ("What does EIP-4844 introduce?", "What does PUSH0 do?"):
            text = ExtractiveProvider().answer(question, kb.search(question, k=5), TEMPLATE, PARAMS).text
            assert not re.search(r"(title|discussions-to|author|status):|https?://", text), text


def test_a_non_answer_is_recognised_from_retrieval_the_finish_reason_or_the_words() -> None:
    from attest.llm.base import non_answer

    answered = ExtractiveProvider().answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert non_answer(answered, len(CHUNKS)) is None
    assert non_answer(answered, 0) == "retrieval found no passage for the question"
    declined = ExtractiveProvider().answer("zebra migration routes?", CHUNKS[:2], TEMPLATE, PARAMS)
    assert non_answer(declined, 2) == "the answer says the knowledge base does not answer the question"
    for words in ("The provided passages do not answer this question.", "I don't know.", "The context doesn't say."):
        assert non_answer(dataclasses.replace(answered, text=words), 2) is not None, words
    assert non_answer(dataclasses.replace(answered, text="The base fee is not paid to miners [1]."), 2) is None


def test_a_question_naming_what_no_passage_mentions_is_declined() -> None:
    # What full-corpus retrieval gave for it: passages sharing "capital", none naming France.
    passages = [
        chunk("Besides free withdrawals, another benefit of `0x01` validators is the capital efficiency.", 0,
              "eips/eip-8062.md", ("Add sweep withdrawal fee for 0x01 validators", "Rationale")),
        chunk("A 32-ETH `0x01` validator will have approximately the same capital efficiency as a 128-ETH one.", 1,
              "eips/eip-8062.md", ("Add sweep withdrawal fee for 0x01 validators", "Rationale")),
    ]  # fmt: skip
    answer = ExtractiveProvider().answer("What is the capital of France?", passages, TEMPLATE, PARAMS)
    assert answer.text == NO_MATCH and answer.metadata.finish_reason == "no_match" and answer.citations == ()


def test_the_document_titled_by_what_the_question_names_answers_first() -> None:
    passages = [
        chunk("The `CALL`, `CALLCODE`, `DELEGATECALL`, and `STATICCALL` opcodes MUST cost 25 gas per alias.", 0,
              "eips/eip-6189.md", ("Alias Contracts", "Specification")),
        chunk("Add a new opcode, `DELEGATECALL` at `0xf4`, which is similar in idea to `CALLCODE`, except that it "
              "propagates the sender and value from the parent scope to the child scope.", 0, "eips/eip-7.md",
              ("DELEGATECALL",)),
    ]  # fmt: skip
    answer = ExtractiveProvider().answer("What does the DELEGATECALL opcode do?", passages, TEMPLATE, PARAMS)
    found = quotes(answer.text)
    assert found[0][1] == 2 and "propagates the sender and value" in found[0][0]

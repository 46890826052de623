"""`attest ask` overhead: everything the flow spends around the model call, per step, on the devnet.

The model is a zero-latency local OpenAI-compatible server, so the real SDK path runs (client, request, parsing);
its time is the "answer" step and is reported apart. Overhead = wall time of `ask()` minus "answer". The anchor,
measured in the same run on the same chain: approve + assertTruth sent with web3 alone (no ledger, IPFS, record).

    python -m bench.ask [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

from web3 import Web3

from attest.accounts import dev_account
from attest.chain.artifacts import uma
from attest.chain.oov3 import to_bytes32
from attest.devnet import Deployment
from bench.common import ROOT, Table, env_var, peak_rss_mib, percentile, rss_mib, throwaway_home

GOAL_MS = 300.0
STEPS = ("connect", "plan", "retrieve", "sign", "pin", "assert")
CORPUS = ROOT.parent / "shared" / "corpus" / "eips"
FALLBACK_CORPUS = ROOT / "tests" / "fixtures" / "kb" / "good"
QUERIES = (
    "What does EIP-1559 do with the base fee?",
    "How does EIP-4844 price blob gas?",
    "What is the purpose of EIP-712 typed data signing?",
    "Which opcode does EIP-3855 add?",
    "How are access lists defined in EIP-2930?",
)
ANSWER = "The base fee is burned [1], and blocks target half full [2]."
COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "bench-fake",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop", "logprobs": None}
    ],
    "usage": {"prompt_tokens": 300, "completion_tokens": 17, "total_tokens": 317},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API serves; the SDK reuses its connection
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the client's delayed ACK
    # (40 ms on Linux), which a zero-latency model must not add.
    disable_nagle_algorithm = True
    body = json.dumps(COMPLETION).encode()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def fake_openai() -> Iterator[str]:
    """A chat-completions endpoint that answers at once; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Samples:
    steps: dict[str, list[float]]  # ms
    answer: list[float]
    other: list[float]  # wall time outside the timed steps: account, ledger rows, result
    overhead: list[float]  # wall - answer
    baseline: list[float]  # approve + assertTruth, web3 alone
    rss: list[float]  # MiB after the warm-up, half-way and at the end: flat memory means no per-ask growth


def _ask_once(query: str, config: Any) -> tuple[dict[str, float], float, bytes]:
    from attest.flow.ask import AskRequest, ask

    started = time.perf_counter()
    result = ask(AskRequest(query, account="dev:1", provider="openai"), config=config)
    wall = (time.perf_counter() - started) * 1000
    if result.attestation.assertion_id is None or result.attestation.claim is None:
        raise RuntimeError("ask returned without an assertion")
    return result.timings_ms, wall, result.attestation.claim


class BareAsserter:
    """approve + assertTruth, built, signed and sent with web3 alone: what any client must spend per attestation."""

    def __init__(self, w3: Web3, deployment: Deployment, claim: bytes) -> None:
        self.w3 = w3
        self.account = dev_account(1)
        self.claim = claim
        self.registry = deployment.registry
        self.currency = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.currency), abi=uma("TestnetERC20").abi
        )
        self.oov3 = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.oov3), abi=uma("OptimisticOracleV3").abi
        )
        self.bond = int(self.oov3.functions.getMinimumBond(self.currency.address).call())
        self.chain_id = int(w3.eth.chain_id)

    def _send(self, call: Any) -> None:
        tx = dict(call.build_transaction({"from": self.account.address, "chainId": self.chain_id}))
        tx["nonce"] = self.w3.eth.get_transaction_count(self.account.address, "pending")
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.005)
        if receipt["status"] != 1:
            raise RuntimeError("baseline transaction reverted")

    def once(self, i: int) -> float:
        # The assertion id hashes the claim, not the domain: each round needs its own claim, as each record does.
        claim = self.claim + f" #{i}".encode()
        domain = Web3.keccak(claim)
        started = time.perf_counter()
        self._send(self.currency.functions.approve(self.oov3.address, self.bond))
        self._send(
            self.oov3.functions.assertTruth(
                claim, self.account.address, self.registry, "0x" + "00" * 20, 7200,
                self.currency.address, self.bond, to_bytes32("ASSERT_TRUTH2"), domain,
            )
        )  # fmt: skip
        return (time.perf_counter() - started) * 1000


def measure(n: int, corpus: Path) -> tuple[Samples, int]:
    from attest.config import Config, Defaults, LlmConfig
    from attest.kb import KnowledgeBase

    samples = Samples({step: [] for step in STEPS}, [], [], [], [], [])
    with throwaway_home() as (home, w3, deployment), env_var("ATTEST_HOME", str(home)), fake_openai() as url:
        with KnowledgeBase() as kb:
            kb.add_path(corpus)
            documents = kb.stats().documents
        config = Config(defaults=Defaults(account="dev:1"), llm=LlmConfig(provider="openai", base_url=url))
        *_, claim = _ask_once(QUERIES[0], config)  # warm-up: imports, SDK client, OOv3 caches, first pins
        samples.rss.append(rss_mib())
        for i in range(n):
            if i == n // 2:
                samples.rss.append(rss_mib())
            timings, wall, _ = _ask_once(QUERIES[i % len(QUERIES)], config)
            for step in STEPS:
                samples.steps[step].append(timings[step])
            samples.answer.append(timings["answer"])
            samples.other.append(wall - sum(timings.values()))
            samples.overhead.append(wall - timings["answer"])
        samples.rss.append(rss_mib())
        bare = BareAsserter(w3, deployment, claim)
        bare.once(-1)  # warm-up, as above
        samples.baseline = [bare.once(i) for i in range(n)]
    return samples, documents


def _row(name: str, values: Sequence[float]) -> tuple[str, str, str]:
    return (name, f"{percentile(values, 50):.1f}", f"{percentile(values, 95):.1f}")


def run(quick: bool = False) -> list[Table]:
    n = 5 if quick else 50
    corpus = CORPUS if CORPUS.is_dir() else FALLBACK_CORPUS
    s, documents = measure(n, corpus)
    p50 = percentile(s.overhead, 50)
    base50 = percentile(s.baseline, 50)
    rows = [_row(step, s.steps[step]) for step in STEPS]
    rows += [
        _row("untimed (account, ledger rows, result)", s.other),
        _row("**total overhead** (wall - answer)", s.overhead),
        _row("anchor: approve + assertTruth, web3 alone", s.baseline),
        (
            "overhead / anchor",
            f"{p50 / base50:.2f}x",
            f"{percentile(s.overhead, 95) / percentile(s.baseline, 95):.2f}x",
        ),
        _row("answer (fake model: SDK + local HTTP, not overhead)", s.answer),
    ]
    met = "met" if p50 < GOAL_MS else "NOT met"
    return [
        Table(
            f"`attest ask` overhead excluding the model, {n} asks on the devnet",
            ("step", "p50 (ms)", "p95 (ms)"),
            rows,
            f"Goal: total overhead p50 under {GOAL_MS:.0f} ms — {met} ({p50:.1f} ms). "
            f"Library flow `attest.flow.ask.ask` with provider `openai` pointed at a local OpenAI-compatible server "
            f"that answers at once (the real SDK path; its time is the answer row, excluded from overhead). "
            f"KB: {corpus.name}, {documents} documents; account dev:1; one warm-up ask first. Each ask retrieves, "
            "signs, writes the ledger, pins record + rules to the local block store and sends approve + assertTruth "
            "(no standing allowance). The anchor sends the same two transactions, same claim bytes, with web3 "
            "alone (build with gas estimate, sign, send, wait for the receipt) on the same chain. "
            f"Memory: RSS {s.rss[0]:.0f} MiB after the warm-up, {s.rss[1]:.0f} MiB half-way, {s.rss[2]:.0f} MiB after "
            f"{n} asks; peak {peak_rss_mib():.0f} MiB (the bench process, KB ingest included).",
        )
    ]


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])

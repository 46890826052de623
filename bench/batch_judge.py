"""The disputer judging one Merkle batch: records judged per second against the judge alone at the same
concurrency, both talking to `bench.fake_judge` in a child process (every request waits 1 s, as a hosted model).
Goal: >= 90% of the judge alone.

The batch side is the disputer's own evaluation of a batch assertion (disputer/evaluate.py): the manifest read
and checked, then every record fetched, checked (signature, digest, inclusion proof) and judged, `concurrency`
at a time. No chain: the assertion is the one the claim would make, so only the evaluation is timed.

    python -m bench batch_judge [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from attest.accounts import dev_account
from attest.batch.claim import build_batch_claim, rules_v2_cid
from attest.batch.manifest import build_manifest, manifest_bytes
from attest.chain.oov3 import ZERO_ADDRESS, AssertionMade
from attest.config import LlmConfig
from attest.ipfs.local import LocalStore
from attest.llm.registry import provider_from_config
from attest.record.canonical import digest
from attest.record.codec import decode_record
from bench.common import Table, env_var
from bench.disputer import DOCUMENT, LATENCY_S, MODEL, _record, measure_ceiling
from bench.fake_judge import judge_process
from disputer.evaluate import Evaluator
from disputer.judge import LlmJudge

CONCURRENCY = 64
GOAL_SHARE = 0.9
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def batch_of(store: LocalStore, n: int) -> AssertionMade:
    """A batch of `n` bench records (every tenth wrong) pinned in `store`, and the assertion naming it."""
    account = dev_account(1)
    doc_cid = str(store.put(DOCUMENT.encode()))
    records = []
    for i in range(n):
        data = _record(i, account, doc_cid)
        records.append((str(store.put(data)), digest(decode_record(data))))
    manifest = build_manifest(records, account)
    cid = str(store.put(manifest_bytes(manifest)))
    claim = build_batch_claim(cid, manifest.root, n, account.address, rules_v2_cid())
    return AssertionMade(
        b"\x01" * 32, bytes.fromhex(manifest.root[2:]), claim, account.address, REGISTRY, ZERO_ADDRESS,
        account.address, 0, ZERO_ADDRESS, 0, b"\0" * 32, b"\0" * 32, 0, 1,
    )  # fmt: skip


def run(quick: bool = False) -> list[Table]:
    n = 200 if quick else 1_000
    with tempfile.TemporaryDirectory() as tmp, env_var("ATTEST_HOME", tmp):
        store = LocalStore(Path(tmp) / "ipfs")
        made = batch_of(store, n)
        with judge_process([], latency_s=LATENCY_S) as judge_server:
            provider = provider_from_config(LlmConfig(provider="openai", base_url=judge_server.base_url, model=MODEL))
            evaluator = Evaluator(
                LlmJudge(provider, MODEL, samples=1), [store], registry=REGISTRY, timeout_s=30,
                batch_concurrency=CONCURRENCY,
            )  # fmt: skip
            started = time.monotonic()
            evaluation = evaluator.evaluate(made)
            batch_s = time.monotonic() - started
            if evaluation.judge_calls != n or evaluation.failed:
                raise RuntimeError(f"the batch was not judged whole: {evaluation.failed_checks[:3]}")
            alone_per_s = measure_ceiling(judge_server.base_url, n, CONCURRENCY)
    batch_per_s = n / batch_s
    share = batch_per_s / alone_per_s
    met = share >= GOAL_SHARE
    return [
        Table(
            f"The disputer judging one batch of {n:,} records (judge latency {LATENCY_S:g} s, concurrency "
            f"{CONCURRENCY})",
            ("phase", "records judged per second", "wall time (s)"),
            [
                (
                    "the disputer's batch evaluation (fetch, check, prove, judge)",
                    f"{batch_per_s:.1f}",
                    f"{batch_s:.1f}",
                ),
                ("the judge alone, same concurrency", f"{alone_per_s:.1f}", f"{n / alone_per_s:.1f}"),
            ],
            f"Goal >= {GOAL_SHARE:.0%} of the judge alone: {share:.1%}, {'met' if met else 'NOT met'}. "
            "Same fake judge process, same prompts and SDK; the batch side also reads each record from the local "
            "store and checks its signature, digest and inclusion proof.",
        )
    ]


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])

"""A slow fake OpenAI-compatible judge for the disputer bench and its tests, served by the project's one fake
model server (tests/support/llm_fakes.py).

Every chat completion waits a fixed latency, as a hosted model does, then answers one JSON verdict chosen from
the request: the first rule whose marker phrase appears in the prompt (the graded answer) gives the score and
may give its own latency; otherwise the default score.

`judge_server` runs in this process (tests); `judge_process` runs the same server in a child interpreter (the
bench), so the judge's own parsing and serving never compete with the daemon for this process's GIL:

    python -m bench.fake_judge --latency 1.0 --rule "never needs trimming=0.05"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.llm_fakes import STATS_PATH, FakeModelServer, Stats

ROOT = Path(__file__).resolve().parent.parent  # not bench.common's: the child should not import web3


@dataclass(frozen=True)
class Rule:
    marker: str  # a phrase only the answers this rule grades contain
    score: float
    latency_s: float | None = None  # None: the server's latency


def judge_server(
    rules: Sequence[Rule] = (), *, latency_s: float = 1.0, default_score: float = 0.95, port: int = 0
) -> FakeModelServer:
    """`with judge_server(rules, latency_s=1.0) as judge:` then point an OpenAI client at `judge.base_url`."""

    def verdict(prompt: str) -> tuple[str, float]:
        score, latency = default_score, latency_s
        for rule in rules:
            if rule.marker in prompt:
                score, latency = rule.score, latency_s if rule.latency_s is None else rule.latency_s
                break
        return json.dumps({"score": score, "rationale": f"bench verdict {score}"}), latency

    return FakeModelServer("openai", reply=verdict, port=port)


class JudgeProcess:
    """A judge server in a child interpreter: its URL, and its counters over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def stats(self) -> Stats:
        url = self.base_url.removesuffix("/v1") + STATS_PATH
        with urllib.request.urlopen(url, timeout=10) as response:
            data = json.loads(response.read())
        return Stats(int(data["requests"]), int(data["max_in_flight"]))


@contextmanager
def judge_process(rules: Sequence[Rule], *, latency_s: float, default_score: float = 0.95) -> Iterator[JudgeProcess]:
    argv = [sys.executable, "-m", "bench.fake_judge", "--latency", str(latency_s), "--default", str(default_score)]
    for rule in rules:
        argv += ["--rule", f"{rule.marker}={rule.score}" + ("" if rule.latency_s is None else f"@{rule.latency_s}")]
    child = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"the fake judge did not start (exit code {child.poll()})")
        yield JudgeProcess(line)
    finally:
        # Closing its stdin is the child's signal to stop; it is killed if it does not.
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _rule(text: str) -> Rule:
    marker, _, rest = text.rpartition("=")
    score, _, latency = rest.partition("@")
    return Rule(marker, float(score), float(latency) if latency else None)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_judge")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds every request waits")
    parser.add_argument("--default", type=float, default=0.95, help="the score when no rule matches")
    parser.add_argument("--rule", action="append", default=[], help="MARKER=SCORE[@LATENCY]")
    args = parser.parse_args(argv)
    rules = [_rule(r) for r in args.rule]
    with judge_server(rules, latency_s=args.latency, default_score=args.default) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)


if __name__ == "__main__":
    main(sys.argv[1:])

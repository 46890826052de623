"""Shared bench plumbing: a throwaway devnet, table printing, and the docs/benchmarks.md writer."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from web3 import Web3

from attest.chain.artifacts import Artifact
from attest.devnet import Deployment, Devnet
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    notes: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"


@contextmanager
def throwaway_devnet() -> Iterator[tuple[Web3, Deployment]]:
    """A fresh devnet (anvil + UMA stack + registry) in a temporary home, stopped afterwards."""
    with throwaway_home() as (_, w3, deployment):
        yield w3, deployment


@contextmanager
def throwaway_home() -> Iterator[tuple[Path, Web3, Deployment]]:
    """`throwaway_devnet` plus its home, for benches that drive the library (set ATTEST_HOME to it)."""
    with tempfile.TemporaryDirectory(prefix="attest-bench-") as home:
        devnet = Devnet(Path(home))
        status, _ = devnet.up(free_port())
        try:
            assert status.deployment is not None
            yield Path(home), devnet.web3(), status.deployment
        finally:
            devnet.down()


@contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    """`name=value` in this process's environment for the block, then as it was."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_mib() -> float:
    """Resident memory of this process now, in MiB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compile_solidity(path: Path, contract: str) -> Artifact:
    """Compile one bench-only contract with the project's solc shim (npm solcjs)."""
    source = {
        "language": "Solidity",
        "sources": {path.name: {"content": path.read_text()}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": "cancun",
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    out = subprocess.run(
        ["node", str(ROOT / "scripts" / "solc-shim.cjs"), "--standard-json"],
        input=json.dumps(source),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    errors = [e for e in result.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise RuntimeError(errors[0]["formattedMessage"])
    compiled = result["contracts"][path.name][contract]
    return Artifact(contract, compiled["abi"], "0x" + compiled["evm"]["bytecode"]["object"])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {system}"


def write_report(tables: list[Table], path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    header = (
        "# Benchmarks\n\n"
        "Written by `make bench` (`python -m bench --write`); every anchor is measured in the same run.\n\n"
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n- machine: {machine()}\n\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n".join(t.markdown() for t in tables))


_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
out = child.stdout.read()
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
print(json.dumps({"out": out.decode(), "seconds": seconds, "maxrss_kib": usage.ru_maxrss,
                  "status": os.waitstatus_to_exitcode(status)}))
"""


def measured_child(argv: list[str]) -> tuple[str, float, int]:
    """(stdout, wall seconds, peak RSS in bytes) of one child process, run under a small launcher.

    Linux carries a process's peak RSS across fork and exec, so a child forked straight from this process
    would report the bench's own memory (web3, the warmed file). The launcher is a bare interpreter of about
    10 MB; that is the floor of every figure below.
    """
    launched = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *argv], capture_output=True, text=True, check=True, cwd=ROOT
    )
    result = json.loads(launched.stdout)
    if result["status"] != 0:
        raise RuntimeError(f"{argv[0]} exited with {result['status']}")
    return str(result["out"]), float(result["seconds"]), int(result["maxrss_kib"]) * 1024


def status_kib(field_name: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"

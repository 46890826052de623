"""Where llm-attest keeps its data and finds its npm toolchain."""

from __future__ import annotations

import os
from pathlib import Path

from attest.errors import HomeNotWritable, ToolchainMissing

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def toolchain_dir() -> Path:
    """The folder holding `node_modules` (anvil, solcjs, @uma/core): `ATTEST_TOOLCHAIN_DIR` or the checkout."""
    return Path(os.environ.get("ATTEST_TOOLCHAIN_DIR") or _CHECKOUT_ROOT)


def attest_home() -> Path:
    """`ATTEST_HOME`, else `.data/home` in the checkout: devnet state, deployments, later ledger and blocks."""
    env = os.environ.get("ATTEST_HOME")
    return Path(env) if env else _CHECKOUT_ROOT / ".data" / "home"


def writable_home(command: str) -> Path:
    """ATTEST_HOME for `command`, which writes there: refused in one line, before anything is done, where the home
    (or the folder it would be made in) cannot be written, such as an auditor's read-only copy."""
    return require_writable(attest_home(), command)


def require_writable(home: Path, command: str) -> Path:
    """`home` (a folder `command` writes in), or HomeNotWritable when it, or the folder it would be made in, is
    not writable."""
    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        raise HomeNotWritable(
            f"{command} writes to ATTEST_HOME, and {existing} is not writable (read-only); nothing was done. Set "
            "ATTEST_HOME to a writable folder (reading commands such as `attest list` work on a read-only home)"
        )
    return home


def node_package(name: str) -> Path:
    """A package inside the toolchain's node_modules, or a ToolchainMissing saying how to install it."""
    path = toolchain_dir() / "node_modules" / name
    if not path.is_dir():
        raise ToolchainMissing(
            f"npm package {name} is not installed in {toolchain_dir()}; run `make install` (or `npm ci`) there"
        )
    return path


def anvil_executable() -> Path:
    """The anvil binary shipped by npm's @foundry-rs/anvil for this platform."""
    import platform

    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = {"linux": "linux", "darwin": "darwin"}.get(platform.system().lower(), platform.system().lower())
    binary = node_package(f"@foundry-rs/anvil-{system}-{machine}") / "bin" / "anvil"
    if not binary.is_file():
        raise ToolchainMissing(f"anvil is missing at {binary}; run `make install` (or `npm ci`)")
    return binary

"""A js-ipfs daemon (npm `ipfs`) serving the Kubo RPC API on 127.0.0.1, fully offline.

No Kubo binary is reachable from here, and js-ipfs speaks the same RPC for add, block/get, pin. The repo is
created on first start (no help files); every start rewrites its addresses so the API and gateway listen on
the given 127.0.0.1 ports and nothing listens on or dials the swarm. Node 20 needs a `Promise.withResolvers`
polyfill, loaded through NODE_OPTIONS. The daemon runs in its own process group, and `stop` ends the group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from attest.errors import StoreError, ToolchainMissing
from attest.localnet import HOST, log_tail, port_in_use
from attest.paths import node_package

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
READY_LINE = "Daemon is ready"  # printed by ipfs-cli once the API and the gateway listen
LOCK_HELD = "Lock already being held"
LOCK_STALE_S = 20.0  # ipfs-repo's STALE_TIME for its repo.lock
POLYFILL = Path(__file__).resolve().parents[2] / "scripts" / "promise-polyfill.cjs"


def _offline_config(config: dict[str, Any], api_port: int, gateway_port: int) -> dict[str, Any]:
    addresses = config.setdefault("Addresses", {})
    addresses.update(
        API=f"/ip4/{HOST}/tcp/{api_port}",
        Gateway=f"/ip4/{HOST}/tcp/{gateway_port}",
        RPC="",
        Swarm=[],
        Announce=[],
        Delegates=[],
    )
    config["Bootstrap"] = []
    config["Discovery"] = {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}}
    config.setdefault("Pubsub", {})["Enabled"] = False
    return config


class JsIpfsDaemon:
    def __init__(self, repo: Path, api_port: int, gateway_port: int) -> None:
        self.repo = repo
        self.api_port = api_port
        self.gateway_port = gateway_port
        self.log_file = repo / "daemon.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        """The API as a multiaddr, the form `ipfshttpclient` and `KuboStore` take."""
        return f"/ip4/{HOST}/tcp/{self.api_port}/http"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Init the repo if needed, start the daemon and return once it reports ready and answers as this repo."""
        if self._proc is not None:
            raise StoreError(f"the js-ipfs daemon for {self.repo} is already started (pid {self._proc.pid})")
        deadline = time.monotonic() + timeout_s
        cmd, env = self._command(), self._env()
        # js-ipfs does not exit when a port is taken: it logs EADDRINUSE and lingers, so check first.
        for port in (self.api_port, self.gateway_port):
            if port_in_use(port):
                raise StoreError(f"port {port} on {HOST} is in use; stop what holds it or pick another port")
        if self._repo_locked():
            raise StoreError(self._locked_message())
        if not (self.repo / "config").is_file():
            self.repo.mkdir(parents=True, exist_ok=True)
            self._run([*cmd, "init", "--emptyRepo"], env, deadline)
        config_file = self.repo / "config"
        config = _offline_config(json.loads(config_file.read_text()), self.api_port, self.gateway_port)
        config_file.write_text(json.dumps(config, indent=2))
        peer_id = str(config.get("Identity", {}).get("PeerID", ""))
        with open(self.log_file, "ab") as log:
            log_start = log.tell()
            self._proc = subprocess.Popen(
                [*cmd, "daemon", "--offline", "--enable-preload=false"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(peer_id, log_start, deadline, timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the daemon's process group (js-ipfs closes its repo cleanly on it), SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)

    def __enter__(self) -> JsIpfsDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise ToolchainMissing("node is not on PATH; install Node.js 20 or newer to run the js-ipfs daemon")
        cli = node_package("ipfs") / "src" / "cli.js"
        if not cli.is_file():
            raise ToolchainMissing(f"{cli} is missing; run `make install` (or `npm ci`)")
        return [node, str(cli)]

    def _env(self) -> dict[str, str]:
        if not POLYFILL.is_file():
            raise ToolchainMissing(f"{POLYFILL} is missing; js-ipfs cannot start on Node 20 without it")
        node_options = os.environ.get("NODE_OPTIONS", "")
        # Quoted so a checkout path with spaces survives NODE_OPTIONS' word splitting.
        return {
            **os.environ,
            "IPFS_PATH": str(self.repo),
            "NODE_OPTIONS": f'{node_options} --require "{POLYFILL}"',
            # ipfs-cli's update-notifier would otherwise ask the npm registry from a detached process.
            "NO_UPDATE_NOTIFIER": "1",
        }

    def _run(self, cmd: list[str], env: dict[str, str], deadline: float) -> None:
        try:
            done = subprocess.run(
                cmd, env=env, capture_output=True, timeout=max(deadline - time.monotonic(), 1.0), check=False
            )
        except subprocess.TimeoutExpired:
            raise StoreError(f"`jsipfs {cmd[2]}` did not finish in time for {self.repo}") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise StoreError(f"`jsipfs {cmd[2]}` failed for {self.repo}: {' | '.join(tail)}")

    def _wait_ready(self, peer_id: str, log_start: int, deadline: float, timeout_s: float) -> None:
        """Ready means the daemon said so (the API answers before the gateway is up) and the API is our node."""
        assert self._proc is not None
        request = urllib.request.Request(f"{self.api_url}/api/v0/id", method="POST")
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                if LOCK_HELD in self._log_since(log_start):
                    raise StoreError(self._locked_message())
                raise StoreError(
                    f"the js-ipfs daemon exited with code {self._proc.returncode} at start; see {self.log_file}"
                    + log_tail(self.log_file)
                )
            if READY_LINE in self._log_since(log_start):
                try:
                    with urllib.request.urlopen(request, timeout=5.0) as response:
                        answered = json.loads(response.read()).get("ID")
                except (OSError, ValueError, AttributeError) as err:
                    raise StoreError(f"the js-ipfs daemon said it was ready but {self.api_url} fails: {err}") from None
                if answered != peer_id:
                    raise StoreError(
                        f"port {self.api_port} on {HOST} is held by another IPFS node ({answered}); pick another port"
                    )
                return
            time.sleep(0.1)
        raise StoreError(
            f"the js-ipfs daemon was not ready on {self.api_url} within {timeout_s:g}s; see {self.log_file}"
            + log_tail(self.log_file)
        )

    def _repo_locked(self) -> bool:
        """proper-lockfile's lock: a `repo.lock` directory its holder touches every 10s, stale after 20s."""
        try:
            age = time.time() - (self.repo / "repo.lock").stat().st_mtime
        except FileNotFoundError:
            return False
        return age < LOCK_STALE_S

    def _locked_message(self) -> str:
        return (
            f"the IPFS repo {self.repo} is locked by another js-ipfs daemon, or by one that died less than "
            f"{LOCK_STALE_S:g}s ago (its lock then goes stale); stop the other daemon or retry in {LOCK_STALE_S:g}s"
        )

    def _log_since(self, offset: int) -> str:
        with open(self.log_file, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

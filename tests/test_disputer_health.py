"""`/healthz` says what the last poll did: a daemon whose RPC goes down is unhealthy from its next poll (not only
once its last success is old), and healthy again from the first poll that works. The RPC is a real fault proxy in
front of the devnet's anvil, over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any

from web3 import Web3

from attest.accounts import dev_account
from attest.chain.oov3 import OptimisticOracleV3
from attest.config import Config
from attest.connect import connect
from disputer.config import DisputerConfig
from disputer.store import DisputerStore
from disputer.telemetry import TelemetryServer
from disputer.wiring import build_daemon
from tests.conftest import LocalChain
from tests.support.faultproxy import FaultProxy
from tests.support.ports import free_port


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_healthz_fails_from_the_first_failed_poll_and_recovers(local_chain: LocalChain) -> None:
    direct = connect("local", start_devnet=False)
    upstream = direct.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    with FaultProxy(upstream, rate=0.0) as proxy, DisputerStore(local_chain.home / "disputer.sqlite") as store:
        w3 = Web3(Web3.HTTPProvider(proxy.url, request_kwargs={"timeout": 2}))
        ctx = dataclasses.replace(direct, w3=w3, oov3=OptimisticOracleV3(w3, direct.oov3.address))
        config = DisputerConfig.model_validate({"backfill_s": 3600, "vote": False, "settle": False})
        daemon = build_daemon(ctx, store, config, Config(), dev_account(2))
        # An hour of grace: only the last poll's result can make it unhealthy within this test.
        server = TelemetryServer(daemon.metrics, free_port(), max_age_s=3600).start()
        try:
            assert asyncio.run(daemon.step()).errors == []
            status, body = health(server.port)
            assert status == 200 and body["ok"] is True and body["last_poll_error"] is None

            proxy.down = True
            report = asyncio.run(daemon.step())
            assert report.errors and report.scan is None
            status, body = health(server.port)
            assert status == 503 and body["ok"] is False
            assert body["last_poll_error"] == report.errors[0] and body["seconds_since_poll"] is not None

            proxy.down = False
            assert asyncio.run(daemon.step()).errors == []
            status, body = health(server.port)
            assert status == 200 and body["ok"] is True and body["last_poll_error"] is None
        finally:
            server.stop()

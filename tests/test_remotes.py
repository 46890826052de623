"""Several stores at once: `attest ipfs pin` to a real js-ipfs node and a pinning service, reads that fall
back across sources, and one remote failing without hiding the others."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ipfshttpclient  # type: ignore[import-untyped]
import pytest

from attest.errors import NotFound, TamperedContent
from attest.ipfs.cid import CID
from attest.ipfs.gateway import Gateway
from attest.ipfs.local import LocalStore
from attest.ipfs.remotes import read_anywhere
from attest.ipfs.unixfs import import_bytes
from tests.support.ipfs_services import FakeGateway, FakePinningService
from tests.support.jsipfs import JsIpfsDaemon

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning")

ATTEST = str(Path(sys.executable).with_name("attest"))
TOKEN = "psa-token-for-tests-7f3a"


@pytest.fixture
def service() -> Iterator[FakePinningService]:
    with FakePinningService(TOKEN) as fake:
        yield fake


def cli_env(tmp_path: Path, config: str, **extra: str) -> dict[str, str]:
    (tmp_path / "config.toml").write_text(config)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTEST_")}
    return {**clean, "ATTEST_HOME": str(tmp_path / "home"), "ATTEST_CONFIG": str(tmp_path / "config.toml"), **extra}


def attest(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ATTEST, *args],
        env=env,
        input=stdin.decode("latin-1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        encoding="latin-1",
    )


def test_pin_reaches_every_remote_and_reports_each(
    tmp_path: Path, daemon: JsIpfsDaemon, service: FakePinningService
) -> None:
    config = f"""
[ipfs]
timeout_s = 20
kubo_api = "{daemon.api}"

[[ipfs.pinning]]
name = "fake"
endpoint = "{service.url}"
token_env = "FAKE_PSA_TOKEN"
"""
    env = cli_env(tmp_path, config, FAKE_PSA_TOKEN=TOKEN)
    data = os.urandom(400_000)
    cid = attest(env, "ipfs", "add", "-", stdin=data).stdout.strip()

    result = attest(env, "ipfs", "pin", cid)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["pinned", "pinned"]
    assert "kubo" in lines[0] and "pinning" in lines[1]
    node = ipfshttpclient.Client(daemon.api, timeout=10)
    pinned = node.pin.ls(type="recursive")["Keys"]
    assert str(CID.parse(cid)) in {str(CID.parse(k)) for k in pinned}
    assert [p.cid for p in service.pins.values()] == [cid]
    assert TOKEN not in result.stdout + result.stderr


def test_one_failing_remote_does_not_hide_the_others(
    tmp_path: Path, daemon: JsIpfsDaemon, service: FakePinningService
) -> None:
    config = f"""
[ipfs]
timeout_s = 10
kubo_api = "{daemon.api}"

[[ipfs.pinning]]
name = "fake"
endpoint = "{service.url}"
token_env = "FAKE_PSA_TOKEN"
"""
    env = cli_env(tmp_path, config, FAKE_PSA_TOKEN="wrong-token-value")
    cid = attest(env, "ipfs", "add", "-", stdin=os.urandom(1000)).stdout.strip()
    result = attest(env, "ipfs", "pin", cid)
    assert result.returncode == 1
    kubo_line, service_line = result.stdout.strip().splitlines()
    assert kubo_line.startswith("pinned") and service_line.startswith("failed")
    assert "FAKE_PSA_TOKEN" in service_line and "wrong-token-value" not in result.stdout + result.stderr
    assert (
        result.stderr.strip()
        == f"Error: pinning failed at {service_line.split()[1]} {service_line.split()[2]}; the other remotes hold {cid}"
    )


def test_pin_of_a_cid_no_source_has_is_not_found(tmp_path: Path, daemon: JsIpfsDaemon) -> None:
    env = cli_env(tmp_path, f'[ipfs]\ntimeout_s = 2\nkubo_api = "{daemon.api}"\n')
    missing = str(import_bytes(os.urandom(64))[0])
    result = attest(env, "ipfs", "pin", missing)
    assert result.returncode == 1 and result.stderr.startswith(f"Error: {missing} was not found")


def test_cat_falls_back_to_the_node_when_the_local_store_lacks_the_cid(tmp_path: Path, daemon: JsIpfsDaemon) -> None:
    data = os.urandom(300_000)
    node = ipfshttpclient.Client(daemon.api, timeout=10)
    cid = node.add_bytes(data, opts={"cid-version": 1, "raw-leaves": True, "chunker": "size-262144"})
    env = cli_env(tmp_path, f'[ipfs]\nkubo_api = "{daemon.api}"\n')
    result = subprocess.run([ATTEST, "ipfs", "cat", cid], env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout == data


def test_read_anywhere_skips_a_tampering_gateway_and_names_it_when_no_source_is_good(tmp_path: Path) -> None:
    data = os.urandom(600_000)
    root, blocks = import_bytes(data, cid_version=1)
    served = {str(cid): block for cid, block in blocks}
    leaf = str(blocks[0][0])
    empty_local = LocalStore(tmp_path / "local")
    with FakeGateway(served) as bad, FakeGateway(served) as good:
        bad.knobs.tamper = {leaf}
        sources = (empty_local, Gateway(bad.url, timeout_s=5), Gateway(good.url, timeout_s=5))
        got, source = read_anywhere(root, sources, timeout_s=5)
        assert got == data and source == Gateway(good.url).name

        good.knobs.tamper = {leaf}
        with pytest.raises(TamperedContent) as err:
            read_anywhere(root, sources, timeout_s=5)
        assert bad.url in str(err.value) and good.url in str(err.value)

        bad.knobs.missing = set(served)
        good.knobs.missing = set(served)
        with pytest.raises(NotFound):
            read_anywhere(root, sources, timeout_s=2)

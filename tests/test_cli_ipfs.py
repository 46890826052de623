"""`attest ipfs …` through the installed console script, on the local store under ATTEST_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ATTEST = str(Path(sys.executable).with_name("attest"))
HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
HELLO_V1 = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTEST_")}
    return {**clean, "ATTEST_HOME": str(tmp_path / "home"), "ATTEST_CONFIG": str(tmp_path / "config.toml")}


def run(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([ATTEST, *args], env=env, input=stdin, capture_output=True, timeout=120, check=False)


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 1, result
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


def test_add_prints_the_cid_ipfs_add_gives_from_a_file_or_stdin(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    assert run(env, "ipfs", "add", str(path)).stdout.decode().strip() == HELLO_V1
    assert (
        run(env, "ipfs", "add", "--cid-version", "0", "-", stdin=b"hello world\n").stdout.decode().strip() == HELLO_V0
    )


def test_cid_version_default_comes_from_config(env: dict[str, str], tmp_path: Path) -> None:
    Path(env["ATTEST_CONFIG"]).write_text("[ipfs]\ncid_version = 0\n")
    assert run(env, "ipfs", "add", "-", stdin=b"hello world\n").stdout.decode().strip() == HELLO_V0


def test_cat_returns_exact_bytes_of_a_multi_block_file(env: dict[str, str]) -> None:
    data = os.urandom(700_000)  # three 256 KiB chunks
    cid = run(env, "ipfs", "add", "-", stdin=data).stdout.decode().strip()
    result = run(env, "ipfs", "cat", cid)
    assert result.returncode == 0 and result.stdout == data


def test_car_export_then_import_into_another_home(env: dict[str, str], tmp_path: Path) -> None:
    data = os.urandom(600_000)
    cid = run(env, "ipfs", "add", "-", stdin=data).stdout.decode().strip()
    car = tmp_path / "out.car"
    assert run(env, "ipfs", "car", "export", cid, str(car)).returncode == 0
    other = {**env, "ATTEST_HOME": str(tmp_path / "other")}
    assert one_line_error(run(other, "ipfs", "cat", cid)).startswith(f"Error: {cid} was not found")
    imported = run(other, "ipfs", "car", "import", str(car))
    assert imported.stdout.decode().split() == [cid]
    assert run(other, "ipfs", "cat", cid).stdout == data


def test_a_corrupt_car_is_refused_and_writes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    data = os.urandom(300_000)
    cid = run(env, "ipfs", "add", "-", stdin=data).stdout.decode().strip()
    car = tmp_path / "out.car"
    run(env, "ipfs", "car", "export", cid, str(car))
    raw = bytearray(car.read_bytes())
    raw[-100] ^= 0xFF
    car.write_bytes(bytes(raw))
    other = {**env, "ATTEST_HOME": str(tmp_path / "other")}
    assert "Error:" in one_line_error(run(other, "ipfs", "car", "import", str(car)))
    blocks = tmp_path / "other" / "ipfs" / "blocks"
    assert not blocks.exists() or not any(p.is_file() for p in blocks.rglob("*"))


def test_export_of_an_unknown_cid_leaves_no_file(env: dict[str, str], tmp_path: Path) -> None:
    car = tmp_path / "missing.car"
    assert "not found" in one_line_error(run(env, "ipfs", "car", "export", HELLO_V1, str(car)))
    assert not car.exists() and list(tmp_path.glob(".car-*")) == []


@pytest.mark.parametrize("bad", ["not-a-cid", "Qm123", "bafyUPPERCASE", ""])
def test_malformed_cids_are_one_clear_error(env: dict[str, str], bad: str) -> None:
    assert one_line_error(run(env, "ipfs", "cat", bad)).startswith("Error: ")


def test_pin_without_any_remote_says_how_to_configure_one(env: dict[str, str]) -> None:
    line = one_line_error(run(env, "ipfs", "pin", HELLO_V1))
    assert "kubo_api" in line and "[[ipfs.pinning]]" in line


def test_bad_config_is_one_clear_error(env: dict[str, str]) -> None:
    Path(env["ATTEST_CONFIG"]).write_text("[ipfs]\ncid_version = 7\n")
    line = one_line_error(run(env, "ipfs", "add", "-", stdin=b"x"))
    assert "cid_version" in line and env["ATTEST_CONFIG"] in line

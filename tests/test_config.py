"""Configuration loading: file, defaults, environment overrides, and one error type for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from attest.config import load_config
from attest.errors import ConfigError

FULL = """
[ipfs]
cid_version = 0
timeout_s = 5
kubo_api = "/ip4/127.0.0.1/tcp/5001/http"
gateways = ["https://gw.example/"]

[[ipfs.pinning]]
name = "pinata"
endpoint = "https://api.pinata.example/psa/"
token_env = "PINATA_TOKEN"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_missing_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "absent.toml")
    assert config.ipfs.cid_version == 1 and config.ipfs.kubo_api is None
    assert config.ipfs.gateways == () and config.ipfs.pinning == ()


def test_a_full_file_is_read_and_normalised(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.ipfs.cid_version == 0 and config.ipfs.timeout_s == 5.0
    assert config.ipfs.gateways == ("https://gw.example",)
    [remote] = config.ipfs.pinning
    assert (remote.name, remote.endpoint, remote.token_env) == (
        "pinata",
        "https://api.pinata.example/psa",
        "PINATA_TOKEN",
    )


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTEST_IPFS_API", "http://127.0.0.1:15001")
    monkeypatch.setenv("ATTEST_IPFS_GATEWAYS", "https://a.example, https://b.example/")
    config = load_config(write(tmp_path, FULL))
    assert config.ipfs.kubo_api == "http://127.0.0.1:15001"
    assert config.ipfs.gateways == ("https://a.example", "https://b.example")


def test_the_token_comes_only_from_the_named_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [remote] = load_config(write(tmp_path, FULL)).ipfs.pinning
    monkeypatch.delenv("PINATA_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="PINATA_TOKEN"):
        remote.token()
    monkeypatch.setenv("PINATA_TOKEN", "secret-value-123")
    assert remote.token() == "secret-value-123"
    assert "secret-value-123" not in repr(remote)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[ipfs\ncid_version = 1", "not valid TOML"),
        ("[ipfs]\ncid_version = 2", "ipfs.cid_version"),
        ("[ipfs]\nunknown = 1", "ipfs.unknown"),
        ("[ipfs]\ntimeout_s = -1", "ipfs.timeout_s"),
        ('[ipfs]\ngateways = ["ftp://x"]', "ipfs.gateways"),
        ('[[ipfs.pinning]]\nname = "x"\nendpoint = "api.example"', "ipfs.pinning.0.endpoint"),
        ('[[ipfs.pinning]]\nname = "x"\nendpoint = "https://a"\ntoken_env = "lower"', "token_env"),
        ('ipfs = "nope"', "ipfs"),
    ],
)
def test_bad_files_raise_one_error_naming_the_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_invalid_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[ipfs]\nkubo_api = "\xff"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


# Found by tests/test_fuzz.py: tomllib lets these through as ValueError and RecursionError.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[ipfs]\ntimeout_s = " + "9" * 5000, "over 4300 digits"),
        ("x = " + "[" * 100_000 + "]" * 100_000, "too deeply"),
        ("x = " + "{a = " * 100_000 + "1" + "}" * 100_000, "too deeply"),
    ],
)
def test_numbers_too_long_and_nesting_too_deep_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    import py_ecc  # noqa: F401  # raises the recursion limit to 100000, as it does inside the CLI

    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_a_config_path_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)

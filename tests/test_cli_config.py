"""`attest config path|show`: the effective configuration, with every fake secret from the file and the
environment masked in both the TOML and the JSON output."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from attest.cli.config import MASK, config, mask_url, masked
from attest.config import Config
from attest.errors import ConfigError

# Fake secrets: each must never appear in any output.
FILE_SECRETS = ("hunter2pass", "QUERYSECRET123", "GWSECRET999", "0123456789abcdef0123456789abcdef", "fragsecret77")
ENV_SECRETS = {
    "PINATA_TOKEN": "pinata-fake-token-ABC",
    "MY_LLM_KEY": "sk-fake-llm-secret-XYZ",
    "OPENAI_API_KEY": "sk-openai-fake-123456",
    "ATTEST_PRIVATE_KEY": "0x" + "5e" * 32,
    "ATTEST_PASSPHRASE": "fake passphrase 9",
}
ENV_URL_SECRET = "envpass99"
RPC_SECRET = "fakeInfuraKey0123456789abcdef"

CONFIG = f"""
[ipfs]
timeout_s = 5
kubo_api = "/ip4/127.0.0.1/tcp/5001/http"
gateways = ["https://gw.example/ipfs?token={FILE_SECRETS[2]}"]

[[ipfs.pinning]]
name = "pinata"
endpoint = "https://user:{FILE_SECRETS[0]}@pin.example/psa?key={FILE_SECRETS[1]}"
token_env = "PINATA_TOKEN"

[[ipfs.pinning]]
name = "other"
endpoint = "https://other.example/psa#{FILE_SECRETS[4]}"
token_env = "OTHER_TOKEN"

[llm]
provider = "openai"
model = "{ENV_SECRETS["OPENAI_API_KEY"]}"
base_url = "https://mainnet.infura.example/v3/{FILE_SECRETS[3]}"
key_env = "MY_LLM_KEY"
budget_tokens = 4000

[defaults]
network = "sepolia"
account = "ops"

[networks.sepolia]
rpc_url_env = "SEPOLIA_RPC_URL"
liveness = 7200

[networks.base-sepolia]
rpc_url = "https://base-sepolia.example/v2/{FILE_SECRETS[3]}"

[networks.base-sepolia.ipfs]
gateways = ["https://gw3.example/?key={FILE_SECRETS[1]}"]
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATTEST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ATTEST_CONFIG", raising=False)
    for name in ("ATTEST_IPFS_API", "ATTEST_IPFS_GATEWAYS", "OTHER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def configured(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = env / "config.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("ATTEST_CONFIG", str(path))
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ATTEST_IPFS_GATEWAYS", f"https://u:{ENV_URL_SECRET}@gw2.example")
    monkeypatch.setenv("SEPOLIA_RPC_URL", f"https://sepolia.infura.example/v3/{RPC_SECRET}")
    return path


def run(*args: str) -> Result:
    result = CliRunner(mix_stderr=False).invoke(config, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def assert_no_secret(text: str) -> None:
    for secret in (*FILE_SECRETS, *ENV_SECRETS.values(), ENV_URL_SECRET, RPC_SECRET, "5e" * 32):
        assert secret not in text


def test_path_follows_attest_config_then_attest_home(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("path").stdout == f"{env / 'home' / 'config.toml'}\n"
    monkeypatch.setenv("ATTEST_CONFIG", str(env / "elsewhere.toml"))
    assert run("path").stdout == f"{env / 'elsewhere.toml'}\n"


def test_show_without_a_file_is_the_defaults_as_toml(env: Path) -> None:
    out = run("show").stdout
    assert out.startswith(f"# file: none, defaults ({env / 'home' / 'config.toml'} does not exist)\n")
    defaults = {k: v for k, v in Config().model_dump(mode="json")["ipfs"].items() if v is not None}
    assert tomllib.loads(out)["ipfs"] == defaults
    assert "# kubo_api is not set" in out


def test_show_masks_every_secret_in_the_toml(configured: Path) -> None:
    result = run("show")
    out = result.stdout
    assert_no_secret(out + result.stderr)
    assert out.splitlines()[0] == f"# file: {configured}"
    assert "ATTEST_IPFS_GATEWAYS" in out and "ATTEST_PRIVATE_KEY" in out.splitlines()[1]  # names, not values
    shown = tomllib.loads(out)
    [pinata, other] = shown["ipfs"]["pinning"]
    assert pinata == {
        "name": "pinata",
        "endpoint": f"https://{MASK}@pin.example/psa?key={MASK}",
        "token_env": "PINATA_TOKEN",
    }
    assert other["endpoint"] == f"https://other.example/psa#{MASK}"
    assert shown["ipfs"]["gateways"] == [f"https://{MASK}@gw2.example"]  # the environment overrides the file
    assert shown["ipfs"]["timeout_s"] == 5.0 and shown["ipfs"]["kubo_api"] == "/ip4/127.0.0.1/tcp/5001/http"
    assert shown["llm"]["base_url"] == f"https://mainnet.infura.example/v3/{MASK}"
    assert shown["llm"]["model"] == MASK  # a secret's value pasted into an ordinary field is scrubbed too
    assert shown["llm"]["budget_tokens"] == 4000  # a number is no secret, whatever its field is called
    assert 'token_env = "PINATA_TOKEN"  # set in the environment' in out
    assert 'token_env = "OTHER_TOKEN"  # not set in the environment' in out
    assert 'key_env = "MY_LLM_KEY"  # set in the environment' in out
    assert shown["defaults"] == {"network": "sepolia", "account": "ops"}
    assert shown["networks"]["sepolia"]["rpc_url_env"] == "SEPOLIA_RPC_URL" and "# rpc_url is not set" in out
    assert 'rpc_url_env = "SEPOLIA_RPC_URL"  # set in the environment' in out
    base = shown["networks"]["base-sepolia"]
    assert base["rpc_url"] == f"https://base-sepolia.example/v2/{MASK}"
    assert base["ipfs"]["gateways"] == [f"https://gw3.example/?key={MASK}"]


def test_show_json_masks_every_secret(configured: Path) -> None:
    out = run("show", "--json").stdout
    assert_no_secret(out)
    view = json.loads(out)
    assert view["file"] == str(configured) and view["path"] == str(configured)
    assert view["secret_env"] == {
        "MY_LLM_KEY": True,
        "OPENAI_API_KEY": True,
        "OTHER_TOKEN": False,
        "PINATA_TOKEN": True,
        "SEPOLIA_RPC_URL": True,
    }
    assert "ATTEST_PASSPHRASE" in view["environment"] and "ATTEST_CONFIG" in view["environment"]
    assert view["config"]["ipfs"]["pinning"][0]["endpoint"] == f"https://{MASK}@pin.example/psa?key={MASK}"
    assert view["config"]["llm"]["key_env"] == "MY_LLM_KEY" and view["config"]["llm"]["model"] == MASK


def test_a_bad_file_is_a_config_error(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = env / "bad.toml"
    path.write_text("[ipfs]\ncid_version = 7\n")
    monkeypatch.setenv("ATTEST_CONFIG", str(path))
    result = CliRunner(mix_stderr=False).invoke(config, ["show"])
    assert isinstance(result.exception, ConfigError) and "ipfs.cid_version" in str(result.exception)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://gw.example/ipfs", "https://gw.example/ipfs"),
        ("http://127.0.0.1:5001/api/v0", "http://127.0.0.1:5001/api/v0"),
        ("https://alice:pw@host.example:8443/x", f"https://{MASK}@host.example:8443/x"),
        ("https://TOKENONLY@host.example", f"https://{MASK}@host.example"),
        ("https://h.example/q?apikey=abc&chain=1", f"https://h.example/q?apikey={MASK}&chain={MASK}"),
        (
            "https://eth-mainnet.g.alchemy.example/v2/aB3dE5gH7jK9mN1pQ3sT",
            f"https://eth-mainnet.g.alchemy.example/v2/{MASK}",
        ),
        ("wss://h.example/ws/0123456789abcdef0123", f"wss://h.example/ws/{MASK}"),
        ("https://h.example/a-very-long-path-segment-name", "https://h.example/a-very-long-path-segment-name"),
        ("/ip4/127.0.0.1/tcp/5001/http", "/ip4/127.0.0.1/tcp/5001/http"),
        ("https://[::1", MASK),
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_masked_hides_fields_named_like_secrets_but_not_their_env_names() -> None:
    data = {
        "rpc": {"api_key": "plain-text-key", "Password": "pw", "token_env": "SOME_TOKEN", "max_tokens": 5},
        "names": ["ok", "sekret-value-42"],
        "defaults": {"account": "0x" + "ab" * 32, "network": "ab" * 20},
    }
    shown = masked(data, ["sekret-value-42"])
    assert shown == {
        "rpc": {"api_key": MASK, "Password": MASK, "token_env": "SOME_TOKEN", "max_tokens": 5},
        "names": ["ok", MASK],
        "defaults": {"account": MASK, "network": "ab" * 20},
    }

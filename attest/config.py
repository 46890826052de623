"""User configuration: `$ATTEST_HOME/config.toml` (or `ATTEST_CONFIG`), then environment overrides.

Secrets never live in the file: a pinning service names the environment variable that holds its token.

    [ipfs]
    cid_version = 1
    timeout_s = 30
    kubo_api = "/ip4/127.0.0.1/tcp/5001/http"      # a Kubo (or js-ipfs) RPC API to pin to and read from
    gateways = ["https://trustless-gateway.link"]   # read-only, every block verified

    [[ipfs.pinning]]
    name = "pinata"
    endpoint = "https://api.pinata.cloud/psa"
    token_env = "PINATA_TOKEN"

    [llm]
    provider = "openai"                          # auto | openai | anthropic | extractive
    model = "llama3.1"
    base_url = "http://127.0.0.1:11434/v1"       # any OpenAI-compatible server
    key_env = "OLLAMA_KEY"                       # optional: where the key is (never the key itself)

    [defaults]
    network = "local"                            # what `--network` means when it is not given
    account = "alice"                            # an ape keystore alias; `dev:N` on the devnet

    [networks.sepolia]
    rpc_url_env = "SEPOLIA_RPC_URL"              # RPC URLs often embed a key, so the file names a variable
    registry = "0x…"                             # our AttestationRegistry: `attest registry deploy --save` writes it
    oov3 = "0x..."                               # default: UMA's OptimisticOracleV3 on that chain (attest.networks)
    oracle = "0x..."                             # the oracle behind OOv3 (MockOracleAncillary or VotingV2)
    ui_base = "https://testnet.oracle.uma.xyz"   # the UMA Oracle UI for that chain
    bond = "250"                                 # in currency units; default: the oracle's minimum bond
    liveness = 7200                              # seconds
    identifier = "ASSERT_TRUTH2"
    currency = "0x..."                           # default: the oracle's default currency
    standing_allowance = false                   # true: approve an unlimited allowance once, not per bond
    confirmations = 3                            # blocks the disputer waits before trusting a log
    gas_margin_pct = 20                          # gas limit = estimate + this percentage (unused gas is not paid)
    max_fee_gwei = 50                            # refuse to sign while base fee + tip is above this; never pay more
    replace_after_s = 60                         # not mined after this long: same nonce, fees bumped (+10% at least)
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from attest.errors import ConfigError
from attest.llm.registry import AUTO, provider_names
from attest.networks import Network, get_network
from attest.paths import attest_home

# Extra gas over the estimate for every transaction. The estimate runs against the latest block, and the block a
# transaction lands in differs: a later time (VotingV2's staking work grows with it), or, in a pipeline, the
# batch's earlier transactions. An exact estimate then runs out of gas; unused gas is not paid for. UMA's own
# settlement bot uses a gas-limit multiplier for the same reason.
DEFAULT_GAS_MARGIN_PCT = 20
# A transaction not mined after this long is signed again with the same nonce and higher fees: the fees it was
# priced at were too low for the blocks since (five mainnet blocks; many more on an L2).
DEFAULT_REPLACE_AFTER_S = 60.0


def _check_http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{value!r} must be an http(s) URL")
    return value


class _Strict(BaseModel):
    # TOML already types its values; lax mode only widens them (int → float, array → tuple).
    model_config = ConfigDict(extra="forbid", frozen=True)


class PinningRemote(_Strict):
    name: str = Field(min_length=1, max_length=64)
    endpoint: str
    token_env: str = Field(default="ATTEST_PINNING_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]*$")

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/")

    def token(self) -> str:
        token = os.environ.get(self.token_env, "")
        if not token:
            raise ConfigError(
                f"pinning service {self.name!r} needs its token in the environment variable {self.token_env}"
            )
        return token


class IpfsConfig(_Strict):
    cid_version: Literal[0, 1] = 1
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    kubo_api: str | None = None
    gateways: tuple[str, ...] = ()
    pinning: tuple[PinningRemote, ...] = ()

    @field_validator("gateways")
    @classmethod
    def _gateway_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_http_url(url).rstrip("/") for url in value)


class LlmConfig(_Strict):
    """The model that answers. `provider = "auto"`: OpenAI if its key is set, else Anthropic, else the
    offline extractive provider. A key is read from the environment variable `key_env` names (default: the
    provider's own, OPENAI_API_KEY / ANTHROPIC_API_KEY), never from this file."""

    provider: str = AUTO  # or a name registered in attest.llm.registry
    model: str | None = None
    base_url: str | None = None  # an OpenAI-compatible server (Ollama, vLLM, llama.cpp) or a proxy
    key_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    budget_tokens: int | None = Field(default=None, gt=0)

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        allowed = (AUTO, *provider_names())
        if value not in allowed:
            names = [repr(name) for name in allowed]
            raise PydanticCustomError("literal_error", f"Input should be {', '.join(names[:-1])} or {names[-1]}")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)

    def api_key(self) -> str | None:
        """The key from `key_env` when one is named; None lets the provider read its own variable."""
        if self.key_env is None:
            return None
        key = os.environ.get(self.key_env, "")
        if not key:
            raise ConfigError(f"[llm] key_env names {self.key_env}, which is not set; export it or remove key_env")
        return key


class EmbeddingsConfig(_Strict):
    """Optional vectors for hybrid KB search (off while `model` is unset). OpenAI-compatible API; the key is
    read from the environment variable `key_env` names (default OPENAI_API_KEY)."""

    model: str | None = None
    base_url: str | None = None
    key_env: str = Field(default="OPENAI_API_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$")
    batch_size: int = Field(default=128, gt=0, le=2048)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)


_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class NetworkConfig(_Strict):
    """Per-network settings; every field optional so the built-in defaults apply where the file is silent."""

    rpc_url: str | None = None  # only for URLs without credentials; prefer rpc_url_env
    rpc_url_env: str | None = Field(default=None, pattern=_ENV_NAME)
    registry: str | None = Field(default=None, pattern=_ADDRESS)
    oov3: str | None = Field(default=None, pattern=_ADDRESS)  # a UMA deployment the release does not know yet
    ui_base: str | None = None  # the UMA Oracle UI base for this chain
    oracle: str | None = Field(default=None, pattern=_ADDRESS)  # MockOracleAncillary or VotingV2, for voting
    bond: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?$")  # decimal, currency units
    liveness: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    identifier: str | None = Field(default=None, min_length=1, max_length=32)
    currency: str | None = Field(default=None, pattern=_ADDRESS)
    standing_allowance: bool = False
    confirmations: int | None = Field(default=None, ge=0, le=1000)
    # Gas over each transaction's estimate (the block it lands in is not the one it was estimated on).
    gas_margin_pct: int = Field(default=DEFAULT_GAS_MARGIN_PCT, ge=0, le=300)
    # The most paid per gas (gwei), base fee and tip together: nothing is signed while the network asks more.
    max_fee_gwei: float | None = Field(default=None, gt=0, le=1_000_000)
    replace_after_s: float = Field(default=DEFAULT_REPLACE_AFTER_S, gt=0, le=3600)
    ipfs: IpfsConfig | None = None  # replaces [ipfs] for this network

    @field_validator("rpc_url")
    @classmethod
    def _rpc_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)

    @field_validator("ui_base")
    @classmethod
    def _ui_base(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value).rstrip("/")

    def resolved_rpc_url(self, network: str) -> str | None:
        """`rpc_url_env`'s value when named (it must be set), else `rpc_url`."""
        if self.rpc_url_env is not None:
            url = os.environ.get(self.rpc_url_env, "")
            if not url:
                raise ConfigError(
                    f"[networks.{network}] rpc_url_env names {self.rpc_url_env}, which is not set; export it"
                )
            if not url.startswith(("https://", "http://")):
                # The value may embed an API key: name the variable, never echo the URL.
                raise ConfigError(f"{self.rpc_url_env} must hold an http(s) RPC URL; fix the variable")
            return url
        return self.rpc_url


class Defaults(_Strict):
    network: str = "local"
    account: str | None = None


class BatchConfig(_Strict):
    """`attest batch run`: flush the queue into one Merkle batch at `max_records` or when the oldest queued
    record has waited `max_age_s`."""

    max_records: int = Field(default=1000, ge=1, le=10_000)
    max_age_s: float = Field(default=3600.0, gt=0, le=30 * 86400)


class ServeConfig(_Strict):
    """`attest serve`: how answered records are asserted, and the limits of a client (per API key, or per client
    address on a loopback bind without keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # batch: queued and asserted in Merkle batches ([batch] max_records / max_age_s); each: one assertion per
    # answer before it is returned; none: signed, pinned and in the ledger only.
    assert_mode: Literal["batch", "each", "none"] = Field(default="batch", alias="assert")
    network: str | None = None  # default: [defaults] network
    account: str | None = None  # default: [defaults] account
    cors_origins: tuple[str, ...] = ()  # CORS stays off unless origins are listed
    rate_per_s: float = Field(default=20.0, gt=0, le=100_000)  # requests a key makes per second, sustained...
    burst: int = Field(default=40, ge=1, le=100_000)  # ...and at once
    daily_records: int = Field(default=10_000, ge=1)  # records a key may have made per UTC day
    max_body_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)  # per request, else 504


class RankConfig(_Strict):
    """`attest rank`: the account whose preferences count (a ranker may differ from the asserting account);
    unset, the `[defaults] account` ranks."""

    account: str | None = None


class Config(_Strict):
    defaults: Defaults = Defaults()
    batch: BatchConfig = BatchConfig()
    rank: RankConfig = RankConfig()
    serve: ServeConfig = ServeConfig()
    ipfs: IpfsConfig = IpfsConfig()
    llm: LlmConfig = LlmConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    networks: dict[str, NetworkConfig] = Field(default_factory=dict)
    # The disputer's own table: validated by disputer.config, carried here so one file serves both CLIs.
    disputer: dict[str, object] = Field(default_factory=dict)

    def network(self, name: str) -> NetworkConfig:
        return self.networks.get(name, NetworkConfig())

    def resolve_network(self, name_or_chain_id: str | int) -> Network:
        """The built-in network with this file's OOv3 and Oracle UI overrides applied."""
        network = get_network(name_or_chain_id)
        settings = self.network(network.name)
        return network.with_overrides(oov3=settings.oov3, ui_base=settings.ui_base)

    def ipfs_for(self, network: str) -> IpfsConfig:
        return self.network(network).ipfs or self.ipfs


def config_path() -> Path:
    return Path(os.environ.get("ATTEST_CONFIG") or attest_home() / "config.toml")


def read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML data ({} when there is no file); a file that cannot be read as TOML is a ConfigError."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid TOML ({err}); fix or remove it") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively; no config nests more than a few levels.
        raise ConfigError(f"{path} nests arrays or inline tables too deeply to be a config; fix or remove it") from None
    except ValueError:
        # tomllib lets int()'s digit limit through as a plain ValueError.
        raise ConfigError(f"{path} holds an integer over 4300 digits long; fix or remove it") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}; check that it is a readable file") from None


def load_config(path: Path | None = None) -> Config:
    """The file (absent means defaults), then `ATTEST_IPFS_API` and `ATTEST_IPFS_GATEWAYS` (comma-separated)."""
    path = path or config_path()
    data: dict[str, object] = read_toml(path)
    ipfs = data.get("ipfs", {})
    if isinstance(ipfs, dict):
        overrides: dict[str, object] = {}
        if api := os.environ.get("ATTEST_IPFS_API"):
            overrides["kubo_api"] = api
        if gateways := os.environ.get("ATTEST_IPFS_GATEWAYS"):
            overrides["gateways"] = [g.strip() for g in gateways.split(",") if g.strip()]
        data = {**data, "ipfs": {**ipfs, **overrides}}
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}; fix the file (see `attest config --help`)") from None


def network_line(network: str, key: str, value: str) -> str:
    """The config lines that set `[networks.<network>] key`, to paste or to write."""
    return f'[networks.{network}]\n{key} = "{value}"'


def check_network_key_free(path: Path, network: str, key: str, value: str) -> None:
    """Refuse (ConfigError) when the file already sets `[networks.<network>] key`: it is never overwritten."""
    current = read_toml(path).get("networks", {}).get(network, {})
    if isinstance(current, dict) and key in current:
        raise ConfigError(
            f"{path} already sets [networks.{network}] {key} = {current[key]!r}; to replace it, edit that line to "
            f'{key} = "{value}"'
        )


def save_network_key(path: Path, network: str, key: str, value: str) -> None:
    """Add `key = "value"` to `[networks.<network>]` in the config file, keeping every other line and comment.

    The line goes right under the table's header, or a new table is appended. When the table is written some
    other way (dotted keys, an inline table), or the edit would change anything else, nothing is written and
    the ConfigError names the lines to paste."""
    check_network_key_free(path, network, key, value)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before = read_toml(path)
    line = f'{key} = "{value}"'
    paste = f"add these lines to {path} by hand: " + network_line(network, key, value).replace("\n", "  then  ")
    quoted = re.escape(network)
    name = rf"""(?:{quoted}|"{quoted}"|'{quoted}')"""
    header = re.compile(rf"^[ \t]*\[[ \t]*networks[ \t]*\.[ \t]*{name}[ \t]*\][^\n]*$", re.M)
    match = header.search(text)
    if match is not None:
        new_text = f"{text[: match.end()]}\n{line}{text[match.end() :]}"
    elif network in before.get("networks", {}):
        raise ConfigError(f"{path} defines [networks.{network}] without a table header; {paste}")
    else:
        separator = "" if not text or text.endswith("\n") else "\n"
        new_text = f"{text}{separator}\n{network_line(network, key, value)}\n"
    try:
        after = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        raise ConfigError(f"cannot add the line safely; {paste}") from None
    expected = {**before, "networks": {**before.get("networks", {})}}
    expected["networks"][network] = {**before.get("networks", {}).get(network, {}), key: value}
    if after != expected:  # the header sat inside a multi-line string, or the like
        raise ConfigError(f"cannot add the line safely; {paste}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(new_text, encoding="utf-8")
    if path.exists():
        temp.chmod(path.stat().st_mode & 0o777)
    os.replace(temp, path)

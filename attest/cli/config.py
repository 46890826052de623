"""`attest config`: where the configuration file is, and the effective configuration with every secret masked.

The config file holds no secrets by design (it names the environment variables that do), but users paste
credentials into URLs (`https://user:pass@…`, `?key=…`, Infura/Alchemy keys in the path) and the output of
`config show` ends up in bug reports. So masking is by several independent rules, the last one a scrub of every
secret-looking environment value from the finished text.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import click

MASK = "***"
SECRET_WORDS = ("key", "token", "secret", "password", "passphrase", "credential", "mnemonic")
_TOKENISH = re.compile(r"^[A-Za-z0-9_\-]{16,}$")
_KEY_LIKE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")  # 32 bytes of hex in a config file is a private key
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_MIN_SCRUB_LEN = 6  # shorter values would blank out ordinary words in the output


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_url(text: str) -> str:
    """`text` with URL credentials masked: user info, every query value, the fragment, and path segments that
    look like API keys (Infura's `/v3/<key>`, Alchemy's `/v2/<key>`). Non-URLs come back unchanged."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return MASK  # not parseable, so we cannot tell where a credential would be
    netloc = f"{MASK}@{host}{port}" if "@" in parts.netloc else parts.netloc
    segments = [
        MASK if _TOKENISH.match(s) and re.search(r"\d", s) and re.search(r"[A-Za-z]", s) else s
        for s in parts.path.split("/")
    ]
    query = "&".join(f"{k}={MASK}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    if parts.query and not query:
        query = MASK
    return urlunsplit((parts.scheme, netloc, "/".join(segments), query, MASK if parts.fragment else ""))


def secret_env_values(config_data: Any) -> dict[str, str]:
    """Environment variables that hold secrets, by name: every one a `*_env` field names, and every set
    variable whose name says key/token/secret/password/passphrase."""
    names = set(_env_fields(config_data))
    names.update(name for name in os.environ if _secret_name(name))
    return {name: os.environ[name] for name in sorted(names) if os.environ.get(name)}


def _env_fields(data: Any) -> Iterable[str]:
    if isinstance(data, Mapping):
        for name, value in data.items():
            if str(name).endswith("_env") and isinstance(value, str):
                yield value
            else:
                yield from _env_fields(value)
    elif isinstance(data, list | tuple):
        for item in data:
            yield from _env_fields(item)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SCRUB_LEN:
            text = text.replace(secret, MASK)
    return text


def masked(data: Any, secrets: Iterable[str], name: str = "") -> Any:
    """A copy of a JSON-like config dump with every secret masked (see the module doc for the rules)."""
    secrets = tuple(secrets)
    if isinstance(data, Mapping):
        return {k: masked(v, secrets, str(k)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [masked(item, secrets, name) for item in data]
    if isinstance(data, str):
        if name.endswith("_env"):
            return _scrub(data, secrets)  # the variable's name, not its value
        if (_secret_name(name) and data) or _KEY_LIKE.match(data.strip()):
            return MASK
        return _scrub(mask_url(data), secrets)
    return data


# -- rendering -------------------------------------------------------------------------------------------
def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def to_toml(data: Mapping[str, Any], env_set: Mapping[str, bool], prefix: str = "") -> list[str]:
    """TOML for a config dump: scalars first, then tables; an unset value becomes a comment (TOML has no null),
    and each `*_env` field says whether its variable is set."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict) or _is_table_array(value):
            continue
        if value is None:
            lines.append(f"# {_toml_key(key)} is not set")
            continue
        line = f"{_toml_key(key)} = {_toml_value(value)}"
        if key.endswith("_env") and isinstance(value, str):
            line += "  # set in the environment" if env_set.get(value) else "  # not set in the environment"
        lines.append(line)
    for key, value in data.items():
        path = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        if isinstance(value, dict):
            lines += ["", f"[{path}]", *to_toml(value, env_set, path)]
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{path}]]", *to_toml(item, env_set, path)]
    return lines


@dataclass(frozen=True)
class ConfigView:
    """The effective configuration as `config show` prints it. `secrets` are the values scrubbed from the output
    and are never printed."""

    file: Path | None
    path: Path
    environment: tuple[str, ...]  # ATTEST_* variables set (names only)
    secret_env: dict[str, bool]  # each variable a `*_env` field names, and whether it is set
    config: dict[str, Any]  # masked
    secrets: tuple[str, ...] = field(repr=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "file": str(self.file) if self.file else None,
                "path": str(self.path),
                "environment": list(self.environment),
                "secret_env": self.secret_env,
                "config": self.config,
            },
            indent=2,
            ensure_ascii=False,
        )

    def to_text(self) -> str:
        source = str(self.file) if self.file else f"none, defaults ({self.path} does not exist)"
        lines = [f"# file: {source}"]
        if self.environment:
            lines.append(f"# ATTEST_* variables set: {', '.join(self.environment)}")
        lines.append(f"# secrets are masked as {MASK}; a *_env field names the variable that holds one")
        lines += to_toml(self.config, self.secret_env)
        return "\n".join(lines)


def effective_config(path: Path | None = None) -> ConfigView:
    """The file at `path` (default: the configured one) with environment overrides, masked."""
    from attest.config import config_path, load_config

    path = path or config_path()
    raw = load_config(path).model_dump(mode="json", by_alias=True)
    raw.update(_tables_of_others(path))
    secrets = secret_env_values(raw)
    return ConfigView(
        file=path if path.exists() else None,
        path=path,
        environment=tuple(sorted(name for name in os.environ if name.startswith("ATTEST_"))),
        secret_env={name: bool(os.environ.get(name)) for name in sorted(set(_env_fields(raw)))},
        config=masked(raw, secrets.values()),
        secrets=tuple(secrets.values()),
    )


CONFIG_TABLES_GROUP = "attest.config_tables"


def _tables_of_others(path: Path) -> dict[str, Any]:
    """Tables another installed package reads (the disputer's), with their defaults: by entry point, since attest
    never imports the disputer."""
    from importlib.metadata import entry_points

    return {entry.name: entry.load()(path) for entry in entry_points(group=CONFIG_TABLES_GROUP)}


@click.group()
def config() -> None:
    """The configuration file (ATTEST_CONFIG, else $ATTEST_HOME/config.toml) and its effective values."""


@config.command("path")
def config_path_cmd() -> None:
    """The configuration file's path (it may not exist yet: then defaults apply)."""
    from attest.config import config_path

    click.echo(str(config_path()))


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
def config_show(as_json: bool) -> None:
    """The effective configuration (file, then environment overrides) with every secret masked."""
    view = effective_config()
    click.echo(_scrub(view.to_json() if as_json else view.to_text(), view.secrets))

"""`attest accounts`: the encrypted keystores that sign (shared with ape), and which account a command would use.

Keys and passphrases are only ever read through hidden prompts or the environment, and never printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from attest.accounts import LoadedAccount


def _prompt_hidden(message: str) -> str:
    value: str = click.prompt(message.rstrip(": "), hide_input=True, err=True)
    return value


def resolve_account(spec: str | None, network: str, default: str | None = None) -> LoadedAccount:
    """`load_account` for commands: hidden click prompts for passphrases, its warning printed on stderr."""
    from attest.accounts import load_account

    loaded = load_account(spec, network, default=default, prompt=_prompt_hidden)
    if loaded.warning:
        click.echo(f"Warning: {loaded.warning}", err=True)
    return loaded


def _piped_passphrase() -> str:
    """ATTEST_PASSPHRASE, else the two lines after the key on stdin (the passphrase twice)."""
    from attest.accounts import ENV_PASSPHRASE
    from attest.errors import AccountError

    passphrase = os.environ.get(ENV_PASSPHRASE, "")
    if not passphrase:
        passphrase, again = sys.stdin.readline().rstrip("\n"), sys.stdin.readline().rstrip("\n")
        if not passphrase or passphrase != again:
            raise AccountError(
                f"with the key on stdin, set {ENV_PASSPHRASE} or pipe the passphrase twice after the key (two equal "
                "lines); nothing was written"
            )
    return passphrase


def _new_passphrase() -> str:
    from attest.accounts import ENV_PASSPHRASE

    env = os.environ.get(ENV_PASSPHRASE, "")
    if env:
        return env
    value: str = click.prompt(
        "Passphrase to encrypt the key", hide_input=True, confirmation_prompt="Repeat the passphrase", err=True
    )
    return value


@click.group()
def accounts() -> None:
    """Signing accounts: ape's encrypted keystores (<APE_DATA_FOLDER or ~/.ape>/accounts/ALIAS.json)."""


@accounts.command("list")
def accounts_list() -> None:
    """Every keystore's alias and address (no passphrase needed)."""
    from attest.accounts import keystore_dir, list_keystores

    entries = list_keystores()
    if not entries:
        click.echo(f"no accounts in {keystore_dir()}; create one with `attest accounts generate ALIAS`")
        return
    width = max(len(e.alias) for e in entries)
    for entry in entries:
        click.echo(f"{entry.alias:<{width}}  {entry.address or '(not a readable keystore)'}")


@accounts.command("generate")
@click.argument("alias")
def accounts_generate(alias: str) -> None:
    """Create a new random key and store it encrypted as ALIAS. The passphrase is asked for (hidden), or read
    from ATTEST_PASSPHRASE."""
    from eth_account import Account

    from attest.accounts import check_new_alias, write_keystore

    check_new_alias(alias)
    path = write_keystore(alias, Account.create(), _new_passphrase())
    _report_written(alias, path)


@accounts.command("import")
@click.argument("alias")
def accounts_import(alias: str) -> None:
    """Store an existing private key encrypted as ALIAS. The key and the passphrase are asked for with hidden
    input (the passphrase may come from ATTEST_PASSPHRASE instead). Piped to stdin, the key is its first line and
    the passphrase, unless in ATTEST_PASSPHRASE, the next two."""
    from attest.accounts import check_new_alias, parse_private_key, write_keystore

    check_new_alias(alias)
    # Piped in (`pass show key | attest accounts import bob`): read as lines, with no prompt and no echo to warn of.
    piped = not sys.stdin.isatty()
    key = sys.stdin.readline().strip() if piped else click.prompt("Private key (hex)", hide_input=True, err=True)
    account = parse_private_key(key, "the private key entered")
    path = write_keystore(alias, account, _piped_passphrase() if piped else _new_passphrase())
    _report_written(alias, path)


def _report_written(alias: str, path: Path) -> None:
    from attest.accounts import list_keystores

    # The address as `accounts list` reads it back from the file, so what is printed is what was stored.
    [entry] = [e for e in list_keystores(path.parent) if e.alias == alias]
    click.echo(f"created account {alias}  {entry.address}  ({path})")


@accounts.command("show")
@click.argument("spec", required=False)
@click.option("--network", help="Network name the account would sign on (default: the config's [defaults] network).")
def accounts_show(spec: str | None, network: str | None) -> None:
    """Which account a command would sign with: SPEC is an alias, dev:N, env:ATTEST_PRIVATE_KEY, or nothing for
    the default (ATTEST_PRIVATE_KEY, the config's default account, dev:1 on local). Unlocks it to be sure."""
    from attest.config import load_config

    defaults = load_config().defaults
    loaded = resolve_account(spec, network or defaults.network, defaults.account)
    click.echo(f"account:  {loaded.label}")
    click.echo(f"source:   {loaded.source}")
    click.echo(f"address:  {loaded.address}")

"""Who signs: ape keystores by alias, dev:N on the local network only, ATTEST_PRIVATE_KEY with a warning; and
`attest accounts …`. No key or passphrase may appear in any message, exception or CLI output."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from attest.accounts import (
    ENV_KEY_LABEL,
    ENV_KEY_WARNING,
    LoadedAccount,
    dev_account,
    list_keystores,
    load_account,
    load_keystore,
    parse_private_key,
    write_keystore,
)
from attest.cli.accounts import accounts
from attest.errors import AccountError

PASSPHRASE = "correct horse 42"
FAST_SCRYPT = 2**10  # the default n (2^18) takes ~1.5 s per decrypt; the format is the same


@pytest.fixture
def keystores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ape data folder, and no signing secrets inherited from the environment running the tests."""
    monkeypatch.setenv("APE_DATA_FOLDER", str(tmp_path / "ape"))
    monkeypatch.setenv("ATTEST_CONFIG", str(tmp_path / "no-config.toml"))
    for name in list(os.environ):
        if name in ("ATTEST_PRIVATE_KEY", "ATTEST_PASSPHRASE") or name.startswith("APE_ACCOUNTS_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: nothing may block on a prompt
    folder = tmp_path / "ape" / "accounts"
    folder.mkdir(parents=True)
    return folder


def ape_keystore(folder: Path, alias: str, passphrase: str = PASSPHRASE) -> LocalAccount:
    """A keystore as `ape accounts import` writes it: eth-account's encrypted JSON at <alias>.json."""
    account: LocalAccount = Account.create()
    keystore = Account.encrypt(account.key, passphrase, iterations=FAST_SCRYPT)
    (folder / f"{alias}.json").write_text(json.dumps(keystore))
    return account


def key_hex(account: LocalAccount) -> str:
    return account.key.hex()


def assert_secret_free(err: BaseException, *secrets: str) -> None:
    """Neither the message, the repr, nor a formatted traceback (with its chained exceptions) holds a secret."""
    text = str(err) + repr(err) + "".join(traceback.format_exception(err))
    for secret in secrets:
        for form in {secret, secret.removeprefix("0x"), secret.lower(), secret.upper()}:
            assert form not in text


# -- keystores -------------------------------------------------------------------------------------------
def test_a_keystore_loads_by_alias_with_the_passphrase_from_the_environment(
    keystores: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = ape_keystore(keystores, "alice")
    monkeypatch.setenv("ATTEST_PASSPHRASE", PASSPHRASE)
    loaded = load_account("alice", "sepolia")
    assert (loaded.address, loaded.label, loaded.source, loaded.warning) == (alice.address, "alice", "keystore", None)
    signed = loaded.account.sign_message(encode_defunct(text="hello"))
    assert Account.recover_message(encode_defunct(text="hello"), signature=signed.signature) == alice.address
    assert key_hex(alice) not in repr(loaded)


def test_apes_own_passphrase_variable_wins_over_attest_passphrase(
    keystores: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = ape_keystore(keystores, "bob", "bobs own phrase 7")
    monkeypatch.setenv("ATTEST_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("APE_ACCOUNTS_bob_PASSPHRASE", "bobs own phrase 7")
    assert load_account("bob", "local").address == bob.address


def test_a_wrong_passphrase_is_named_and_not_echoed(keystores: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ape_keystore(keystores, "alice")
    monkeypatch.setenv("ATTEST_PASSPHRASE", "not the passphrase")
    with pytest.raises(AccountError, match="wrong passphrase for account alice") as info:
        load_account("alice", "sepolia")
    assert "ATTEST_PASSPHRASE" in str(info.value)
    assert_secret_free(info.value, "not the passphrase", PASSPHRASE)


def test_the_prompt_gets_three_tries(keystores: Path) -> None:
    alice = ape_keystore(keystores, "alice")
    asked: list[str] = []

    def typing(answers: list[str]) -> object:
        def prompt(message: str) -> str:
            asked.append(message)
            return answers.pop(0)

        return prompt

    loaded = load_keystore("alice", prompt=typing(["typo", PASSPHRASE]))  # type: ignore[arg-type]
    assert loaded.address == alice.address and asked == ["Passphrase for account alice: "] * 2
    asked.clear()
    with pytest.raises(AccountError, match=r"^wrong passphrase for account alice$"):
        load_keystore("alice", prompt=typing(["a", "b", "c", PASSPHRASE]))  # type: ignore[arg-type]
    assert len(asked) == 3


def test_without_a_terminal_or_variable_the_error_says_how_to_give_the_passphrase(keystores: Path) -> None:
    ape_keystore(keystores, "alice")
    with pytest.raises(AccountError, match=r"ATTEST_PASSPHRASE .*APE_ACCOUNTS_alice_PASSPHRASE"):
        load_account("alice", "sepolia")


def test_an_unknown_alias_lists_the_known_ones(keystores: Path) -> None:
    with pytest.raises(AccountError, match=r"no account named 'carol'.*there are no accounts yet"):
        load_account("carol", "sepolia")
    ape_keystore(keystores, "alice")
    ape_keystore(keystores, "bob")
    with pytest.raises(AccountError, match="known aliases: alice, bob"):
        load_account("carol", "sepolia")
    (keystores.parent / "outside.json").write_text("{}")
    with pytest.raises(AccountError, match=r"no account named '../outside'"):
        load_account("../outside", "sepolia")


def test_a_private_key_given_as_the_alias_is_refused_without_echoing_it(keystores: Path) -> None:
    key = key_hex(Account.create())
    for spec in (key, key.removeprefix("0x")):
        with pytest.raises(AccountError, match="looks like a private key") as info:
            load_account(spec, "sepolia")
        assert_secret_free(info.value, key)


def test_a_keystore_whose_address_does_not_match_its_key_is_refused(
    keystores: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ape_keystore(keystores, "alice")
    path = keystores / "alice.json"
    data = json.loads(path.read_text())
    data["address"] = dev_account(3).address[2:].lower()
    path.write_text(json.dumps(data))
    monkeypatch.setenv("ATTEST_PASSPHRASE", PASSPHRASE)
    with pytest.raises(AccountError, match=f"declares address {dev_account(3).address}"):
        load_account("alice", "local")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"address": "00", "crypto": 1}',
        "[" * 100_000,
        json.dumps({"crypto": {"kdf": "scrypt", "kdfparams": {"n": 2**30, "r": 8, "p": 1}}}),
    ],
)
def test_a_file_that_is_not_a_keystore_is_named(keystores: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    (keystores / "broken.json").write_text(content)
    monkeypatch.setenv("ATTEST_PASSPHRASE", PASSPHRASE)
    with pytest.raises(AccountError, match="broken"):
        load_account("broken", "sepolia")
    assert [(e.alias, e.address) for e in list_keystores(keystores)] == [("broken", None)]


def test_write_keystore_is_private_ape_compatible_and_never_overwrites(keystores: Path) -> None:
    account: LocalAccount = Account.create()
    path = write_keystore("carol", account, PASSPHRASE, iterations=FAST_SCRYPT)
    assert path == keystores / "carol.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["address"].lower() == account.address[2:].lower()  # ape reads it without decrypting
    assert Account.decrypt(stored, PASSPHRASE) == account.key
    assert key_hex(account).removeprefix("0x") not in path.read_text()
    assert load_keystore("carol", prompt=lambda _: PASSPHRASE).address == account.address
    before = path.read_bytes()
    with pytest.raises(AccountError, match="already exists"):
        write_keystore("carol", Account.create(), PASSPHRASE, iterations=FAST_SCRYPT)
    assert path.read_bytes() == before
    assert sorted(p.name for p in keystores.iterdir()) == ["carol.json"]  # no temporary file left behind
    assert [(e.alias, e.address) for e in list_keystores()] == [("carol", account.address)]


@pytest.mark.parametrize("alias", ["../evil", "a/b", "", ".hidden", "dev:1", "x" * 65, "ab" * 21])
def test_write_keystore_refuses_unsafe_aliases(keystores: Path, alias: str) -> None:
    with pytest.raises(AccountError, match="alias"):
        write_keystore(alias, Account.create(), PASSPHRASE, iterations=FAST_SCRYPT)
    assert list(keystores.iterdir()) == []


def test_write_keystore_refuses_an_empty_passphrase(keystores: Path) -> None:
    with pytest.raises(AccountError, match="empty passphrase"):
        write_keystore("carol", Account.create(), "", iterations=FAST_SCRYPT)


# -- dev accounts, defaults, the environment key ---------------------------------------------------------
def test_dev_accounts_only_on_the_local_network(keystores: Path) -> None:
    loaded = load_account("dev:2", "local")
    assert (loaded.address, loaded.label, loaded.source) == (dev_account(2).address, "dev:2", "dev")
    with pytest.raises(AccountError, match=r"dev:2 is a public devnet key .* not on sepolia"):
        load_account("dev:2", "sepolia")
    with pytest.raises(AccountError, match="dev:0 to dev:9"):
        load_account("dev:10", "local")
    with pytest.raises(AccountError, match="dev:N"):
        load_account("dev:one", "local")


def test_without_a_spec_local_uses_dev_1_and_other_networks_ask_for_an_account(keystores: Path) -> None:
    loaded = load_account(None, "local")
    assert (loaded.address, loaded.label) == (dev_account(1).address, "dev:1")
    with pytest.raises(AccountError, match=r"--account ALIAS.*ATTEST_PRIVATE_KEY"):
        load_account(None, "sepolia")
    with pytest.raises(AccountError, match="--account ALIAS"):
        load_account("  ", "ethereum")


def test_the_config_default_applies_when_no_spec_is_given(keystores: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = ape_keystore(keystores, "alice")
    monkeypatch.setenv("ATTEST_PASSPHRASE", PASSPHRASE)
    assert load_account(None, "sepolia", default="alice").address == alice.address
    assert load_account("dev:3", "local", default="alice").address == dev_account(3).address
    with pytest.raises(AccountError, match="not on sepolia"):
        load_account(None, "sepolia", default="dev:2")


def test_the_environment_key_comes_with_a_warning(keystores: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account: LocalAccount = Account.create()
    alice = ape_keystore(keystores, "alice")
    monkeypatch.setenv("ATTEST_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("ATTEST_PRIVATE_KEY", f"  {key_hex(account)}\n")
    loaded = load_account(None, "sepolia", default="alice")  # the environment beats the config default
    assert (loaded.address, loaded.label, loaded.source) == (account.address, ENV_KEY_LABEL, "env")
    assert loaded.warning == ENV_KEY_WARNING
    assert load_account(ENV_KEY_LABEL, "sepolia").address == account.address  # a label round-trips as a spec
    assert load_account("alice", "sepolia").address == alice.address  # an explicit spec beats the environment
    assert key_hex(account) not in repr(loaded) + str(loaded)


@pytest.mark.parametrize(
    "key",
    [
        "0x" + "ab" * 31,  # too short
        "0x" + "zz" * 32,  # not hex
        "0x" + "00" * 32,  # zero is no key
        "0x" + "ff" * 32,  # above the curve order
        "my secret words are not a key",
    ],
)
def test_a_malformed_environment_key_is_never_echoed(
    keystores: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("ATTEST_PRIVATE_KEY", key)
    with pytest.raises(AccountError, match=r"^ATTEST_PRIVATE_KEY is not a") as info:
        load_account(None, "local")
    assert_secret_free(info.value, key)
    with pytest.raises(AccountError) as again:
        parse_private_key(key, "the key")
    assert_secret_free(again.value, key)


def test_an_explicit_environment_spec_needs_the_variable(keystores: Path) -> None:
    with pytest.raises(AccountError, match="ATTEST_PRIVATE_KEY is not set"):
        load_account(ENV_KEY_LABEL, "local")


# -- the CLI ---------------------------------------------------------------------------------------------
def run(*args: str, input: str | None = None) -> Result:
    return CliRunner(mix_stderr=False).invoke(accounts, list(args), input=input)


def test_cli_show_prints_the_label_and_warns_about_the_environment_key(
    keystores: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account: LocalAccount = Account.create()
    monkeypatch.setenv("ATTEST_PRIVATE_KEY", key_hex(account))
    result = run("show", "--network", "sepolia")
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.splitlines() == [
        f"account:  {ENV_KEY_LABEL}",
        "source:   env",
        f"address:  {account.address}",
    ]
    assert result.stderr == f"Warning: {ENV_KEY_WARNING}\n"
    assert key_hex(account).removeprefix("0x") not in result.stdout + result.stderr


def test_cli_show_never_echoes_a_malformed_environment_key(keystores: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "0x" + "ab" * 31 + "zz"
    monkeypatch.setenv("ATTEST_PRIVATE_KEY", bad)
    result = run("show")
    assert isinstance(result.exception, AccountError)
    assert_secret_free(result.exception, bad)
    assert bad.removeprefix("0x") not in result.stdout + result.stderr


def test_cli_show_asks_for_a_keystore_passphrase(keystores: Path) -> None:
    alice = ape_keystore(keystores, "alice")
    result = run("show", "alice", "--network", "sepolia", input=f"{PASSPHRASE}\n")
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"address:  {alice.address}" in result.stdout
    assert PASSPHRASE not in result.stdout + result.stderr  # the prompt hides what is typed
    refused = run("show", "alice", "--network", "sepolia", input="x\ny\nz\n")
    assert (
        isinstance(refused.exception, AccountError) and str(refused.exception) == "wrong passphrase for account alice"
    )


def test_cli_generate_then_list_then_use(keystores: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTEST_PASSPHRASE", PASSPHRASE)
    assert "no accounts in" in run("list").stdout
    made = run("generate", "ops")
    assert made.exit_code == 0, (made.output, made.exception)
    [entry] = list_keystores()
    assert made.stdout.startswith(f"created account ops  {entry.address}  (")
    assert run("list").stdout == f"ops  {entry.address}\n"
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    again = run("generate", "ops")
    assert isinstance(again.exception, AccountError) and "already exists" in str(again.exception)
    shown = run("show", "ops", "--network", "ethereum")
    assert shown.exit_code == 0 and f"address:  {entry.address}" in shown.stdout


def test_cli_import_reads_the_key_hidden_and_stores_it_encrypted(keystores: Path) -> None:
    account: LocalAccount = Account.create()
    key = key_hex(account)
    result = run("import", "treasury", input=f"{key}\n{PASSPHRASE}\n{PASSPHRASE}\n")
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"created account treasury  {account.address}" in result.stdout
    text = result.stdout + result.stderr + (keystores / "treasury.json").read_text()
    assert key.removeprefix("0x") not in text and PASSPHRASE not in text
    loaded: LoadedAccount = load_keystore("treasury", prompt=lambda _: PASSPHRASE)
    assert loaded.address == account.address


def test_cli_import_refuses_a_malformed_key_without_echoing_it(keystores: Path) -> None:
    bad = "0x" + "12" * 30
    result = run("import", "treasury", input=f"{bad}\n{PASSPHRASE}\n{PASSPHRASE}\n")
    assert isinstance(result.exception, AccountError)
    assert_secret_free(result.exception, bad)
    assert bad.removeprefix("0x") not in result.stdout + result.stderr
    assert list(keystores.iterdir()) == []


def test_cli_show_follows_the_config_defaults(keystores: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = ape_keystore(keystores, "alice")
    config = keystores.parent.parent / "config.toml"
    config.write_text('[defaults]\nnetwork = "sepolia"\naccount = "alice"\n')
    monkeypatch.setenv("ATTEST_CONFIG", str(config))
    monkeypatch.setenv("ATTEST_PASSPHRASE", PASSPHRASE)
    assert f"account:  alice\nsource:   keystore\naddress:  {alice.address}\n" == run("show").stdout
    config.write_text('[defaults]\nnetwork = "sepolia"\naccount = "dev:1"\n')
    refused = run("show")
    assert isinstance(refused.exception, AccountError) and "not on sepolia" in str(refused.exception)
    assert run("show", "--network", "local").stdout.startswith("account:  dev:1\n")

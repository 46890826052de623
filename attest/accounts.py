"""Who signs: an account spec (`ALIAS`, `dev:N`, `env:ATTEST_PRIVATE_KEY`, or nothing) resolved to a local key.

Aliases name ape's encrypted keystores, `<ape data folder>/accounts/<alias>.json` (the eth-account keystore JSON
that `ape accounts import|generate` and `attest accounts import|generate` write), so one set of accounts serves
both tools. Keys stay in memory as `LocalAccount`s; nothing here prints, logs or stores key material, and every
error names the alias or the variable, never the key or the passphrase.

Resolution without a spec: `ATTEST_PRIVATE_KEY` (with a warning), then the config's default account, then on the
`local` network the devnet's account 1 (account 0 deploys). Anywhere else that is an error saying what to pass.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import is_hex_address, to_checksum_address

from attest.errors import AccountError
from attest.jsonsafe import nested_deeper_than

KeySource = Literal["keystore", "dev", "env"]
PassphrasePrompt = Callable[[str], str]  # asks for a passphrase, given the question to show

ENV_KEY = "ATTEST_PRIVATE_KEY"
ENV_PASSPHRASE = "ATTEST_PASSPHRASE"
ENV_KEY_LABEL = f"env:{ENV_KEY}"
ENV_KEY_WARNING = f"using {ENV_KEY} from the environment; prefer an encrypted keystore (`attest accounts import`)"
LOCAL_NETWORK = "local"
DEFAULT_DEV_INDEX = 1  # account 0 deploys the devnet's contracts; 1 asserts
# anvil's well-known dev mnemonic: these keys are public, for the local chain only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10  # the devnet funds this many of them
PASSPHRASE_ATTEMPTS = 3

# A keystore is a few hundred bytes; anything far larger is not one and is not worth parsing.
_MAX_KEYSTORE_BYTES = 64 * 1024
_MAX_KEYSTORE_DEPTH = 8
# A keystore's KDF parameters set the work to decrypt it; bound them so a bad file fails fast instead of
# exhausting memory (scrypt needs 128·n·r bytes; ape and eth-account write n=2^18, r=8: 256 MiB).
_MAX_SCRYPT_BYTES = 1 << 30
_MAX_PBKDF2_ROUNDS = 10_000_000
_NEW_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_LONG_HEX = re.compile(r"^(0x)?[0-9a-fA-F]{40,}$")


@dataclass(frozen=True)
class LoadedAccount:
    """A key ready to sign. `label` (alias, `dev:1`, `env:ATTEST_PRIVATE_KEY`) is safe to print and to store;
    `warning`, when set, is one line the CLI shows on stderr."""

    account: LocalAccount = field(repr=False)
    label: str
    source: KeySource
    warning: str | None = None

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address


@dataclass(frozen=True)
class KeystoreEntry:
    """One keystore file, read without its passphrase. `address` is None when the file is not a keystore."""

    alias: str
    path: Path
    address: ChecksumAddress | None


# -- where keystores live --------------------------------------------------------------------------------
def ape_data_folder() -> Path:
    """`APE_DATA_FOLDER`, else `~/.ape`: the same rule ape's ConfigManager follows."""
    env = os.environ.get("APE_DATA_FOLDER")
    return Path(env) if env else Path.home() / ".ape"


def keystore_dir() -> Path:
    return ape_data_folder() / "accounts"


def list_keystores(folder: Path | None = None) -> list[KeystoreEntry]:
    """Every `<alias>.json` in the keystore folder with the address it declares, sorted by alias."""
    folder = folder or keystore_dir()
    entries = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            address: ChecksumAddress | None = _declared_address(_read_keystore(path, path.stem))
        except AccountError:
            address = None
        entries.append(KeystoreEntry(path.stem, path, address))
    return entries


# -- resolving a spec ------------------------------------------------------------------------------------
def load_account(
    spec: str | None,
    network: str,
    *,
    default: str | None = None,
    prompt: PassphrasePrompt | None = None,
    folder: Path | None = None,
) -> LoadedAccount:
    """The account that signs on `network` (a network name), from an explicit spec or the fallbacks.

    `default` is the config's default account spec. `prompt` asks for a keystore passphrase with hidden input;
    without one, `getpass` is used when stdin is a terminal.
    """
    if spec is not None and spec.strip():
        return _load_spec(spec.strip(), network, prompt, folder)
    env_key = os.environ.get(ENV_KEY, "")
    if env_key.strip():
        return LoadedAccount(parse_private_key(env_key, ENV_KEY), ENV_KEY_LABEL, "env", ENV_KEY_WARNING)
    if default is not None and default.strip():
        return _load_spec(default.strip(), network, prompt, folder)
    if network == LOCAL_NETWORK:
        return _load_dev(DEFAULT_DEV_INDEX, network)
    raise AccountError(
        f"no account to sign with on {network}: pass `--account ALIAS` (see `attest accounts list`), set a default "
        f"account in the config, or set {ENV_KEY}"
    )


def _load_spec(spec: str, network: str, prompt: PassphrasePrompt | None, folder: Path | None) -> LoadedAccount:
    if spec.startswith("dev:"):
        index = spec.removeprefix("dev:")
        if not index.isdigit():
            raise AccountError(f"{spec!r} is not a dev account; use dev:N with N a number, e.g. dev:1")
        return _load_dev(int(index), network)
    if spec == ENV_KEY_LABEL:
        env_key = os.environ.get(ENV_KEY, "")
        if not env_key.strip():
            raise AccountError(f"{ENV_KEY} is not set; export it or pass another --account")
        return LoadedAccount(parse_private_key(env_key, ENV_KEY), ENV_KEY_LABEL, "env", ENV_KEY_WARNING)
    if _LONG_HEX.match(spec):
        # Never echo it: a long hex string here is most likely a private key pasted in the wrong place.
        raise AccountError(
            "the account given looks like a private key, not an alias; never put keys on the command line or in "
            f"the config: run `attest accounts import ALIAS` (or set {ENV_KEY}) and pass the alias"
        )
    return load_keystore(spec, prompt=prompt, folder=folder)


def dev_account(index: int) -> LocalAccount:
    """The devnet's `dev:index` key, derived from the public mnemonic anvil is started with."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def _load_dev(index: int, network: str) -> LoadedAccount:
    if network != LOCAL_NETWORK:
        raise AccountError(
            f"dev:{index} is a public devnet key and is only used on the local network, not on {network}; "
            "pass `--account ALIAS` for a keystore account"
        )
    if not 0 <= index < DEV_ACCOUNTS:
        raise AccountError(f"the devnet funds dev:0 to dev:{DEV_ACCOUNTS - 1}; dev:{index} does not exist")
    return LoadedAccount(dev_account(index), f"dev:{index}", "dev")


def parse_private_key(text: str, source: str) -> LocalAccount:
    """A 32-byte hex key (optional 0x). `source` names where it came from; errors never contain the key."""
    ok = bool(_HEX_KEY.match(text.strip()))
    account: LocalAccount | None = None
    if ok:
        try:
            account = Account.from_key(text.strip())
        except Exception:
            account = None
    # Raised outside any `except` block, so no chained exception can carry the key into a traceback.
    if account is None:
        what = "a valid secp256k1 private key" if ok else "a 32-byte hex private key (64 hex digits, optional 0x)"
        raise AccountError(f"{source} is not {what}; check it (it is not shown here)")
    return account


# -- keystores -------------------------------------------------------------------------------------------
def load_keystore(alias: str, *, prompt: PassphrasePrompt | None = None, folder: Path | None = None) -> LoadedAccount:
    """Decrypt `<alias>.json` with the passphrase from `APE_ACCOUNTS_<alias>_PASSPHRASE` (ape's own variable),
    else `ATTEST_PASSPHRASE`, else the prompt (up to three tries)."""
    folder = folder or keystore_dir()
    path = folder / f"{alias}.json"
    if Path(alias).name != alias or alias in (".", "..") or not path.is_file():
        raise AccountError(_unknown_alias(alias, folder))
    keystore = _read_keystore(path, alias)
    for variable in (f"APE_ACCOUNTS_{alias}_PASSPHRASE", ENV_PASSPHRASE):
        passphrase = os.environ.get(variable, "")
        if passphrase:
            account = _decrypt(keystore, passphrase, alias)
            if account is None:
                raise AccountError(f"wrong passphrase for account {alias} (from {variable}); fix or unset it")
            return LoadedAccount(account, alias, "keystore")
    ask = prompt or (_getpass if sys.stdin is not None and sys.stdin.isatty() else None)
    if ask is None:
        raise AccountError(
            f"account {alias} is encrypted and no passphrase is available: set {ENV_PASSPHRASE} (or "
            f"APE_ACCOUNTS_{alias}_PASSPHRASE), or run in a terminal to be asked for it"
        )
    for _ in range(PASSPHRASE_ATTEMPTS):
        account = _decrypt(keystore, ask(f"Passphrase for account {alias}: "), alias)
        if account is not None:
            return LoadedAccount(account, alias, "keystore")
    raise AccountError(f"wrong passphrase for account {alias}")


def _getpass(message: str) -> str:
    return getpass.getpass(message)


def _unknown_alias(alias: str, folder: Path) -> str:
    known = [entry.alias for entry in list_keystores(folder)]
    listed = f"known aliases: {', '.join(known)}" if known else "there are no accounts yet"
    return (
        f"no account named {alias!r} in {folder} ({listed}); create one with `attest accounts generate ALIAS` or "
        "`attest accounts import ALIAS`, or use dev:N on the local network"
    )


def _read_keystore(path: Path, alias: str) -> dict[str, Any]:
    bad = f"{path} is not an eth-account keystore; replace it (`attest accounts import {alias}`) or remove it"
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_KEYSTORE_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raise AccountError(bad) from None
    if len(raw) > _MAX_KEYSTORE_BYTES or nested_deeper_than(text, _MAX_KEYSTORE_DEPTH):
        raise AccountError(bad)
    try:
        data = json.loads(text)
    except ValueError:
        raise AccountError(bad) from None
    crypto = data.get("crypto", data.get("Crypto")) if isinstance(data, dict) else None
    if not isinstance(crypto, dict) or not isinstance(crypto.get("kdfparams"), dict):
        raise AccountError(bad)
    if _kdf_too_expensive(crypto.get("kdf"), crypto["kdfparams"]):
        raise AccountError(f"{path} asks for an unreasonably expensive key derivation; it was not written by ape")
    assert isinstance(data, dict)
    return data


def _kdf_too_expensive(kdf: object, params: dict[str, Any]) -> bool:
    def number(name: str) -> int:
        value = params.get(name, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    if kdf == "scrypt":
        return 128 * number("n") * number("r") > _MAX_SCRYPT_BYTES or number("p") > 16
    if kdf == "pbkdf2":
        return number("c") > _MAX_PBKDF2_ROUNDS
    return False


def _declared_address(keystore: dict[str, Any]) -> ChecksumAddress | None:
    address = keystore.get("address")
    if not isinstance(address, str):
        return None
    address = address if address.startswith("0x") else "0x" + address
    return to_checksum_address(address) if is_hex_address(address) else None


def _decrypt(keystore: dict[str, Any], passphrase: str, alias: str) -> LocalAccount | None:
    """The account, or None when the passphrase is wrong; a keystore that cannot be decrypted at all raises."""
    failure: str | None = None
    try:
        account: LocalAccount = Account.from_key(Account.decrypt(keystore, passphrase))
    except ValueError as err:
        if str(err) in ("MAC mismatch", "Checksum mismatch"):
            return None
        failure = type(err).__name__
    except (KeyError, TypeError, AttributeError, NotImplementedError) as err:
        failure = type(err).__name__
    if failure is not None:
        raise AccountError(f"the keystore of account {alias} cannot be decrypted ({failure}); re-import the account")
    declared = _declared_address(keystore)
    if declared is not None and declared != account.address:
        raise AccountError(
            f"the keystore of account {alias} declares address {declared} but holds the key of {account.address}; "
            "the file was edited: re-import the account"
        )
    return account


def check_new_alias(alias: str) -> str:
    """An alias for a new keystore: a short name that cannot be mistaken for a key, a path, or a spec."""
    if _LONG_HEX.match(alias):
        raise AccountError("an alias cannot be a long hex string (it would look like a key); pick a name")
    if not _NEW_ALIAS.match(alias):
        raise AccountError(
            f"alias {alias!r} is not allowed; use up to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return alias


def write_keystore(
    alias: str,
    account: LocalAccount,
    passphrase: str,
    *,
    folder: Path | None = None,
    iterations: int | None = None,
) -> Path:
    """Encrypt `account` into `<folder>/<alias>.json` (mode 0600), atomically; an existing alias is never
    overwritten. `iterations` is the scrypt work factor n (default: eth-account's, the same as ape's)."""
    check_new_alias(alias)
    if not passphrase:
        raise AccountError("an empty passphrase would leave the key unprotected; choose one")
    folder = folder or keystore_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{alias}.json"
    if path.exists():
        raise AccountError(f"account {alias} already exists at {path}; pick another alias (nothing was changed)")
    keystore = Account.encrypt(account.key, passphrase, iterations=iterations)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{alias}.", suffix=".tmp")  # created 0600
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(keystore, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            # A hard link appears complete or not at all and, unlike a rename, refuses an existing target.
            os.link(tmp, path)
        except FileExistsError:
            raise AccountError(f"account {alias} already exists at {path}; pick another alias") from None
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path

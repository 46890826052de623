"""`attest ipfs`: CIDs identical to `ipfs add`, the local blockstore, CAR files, and pins to remotes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, BinaryIO

import click

if TYPE_CHECKING:
    from attest.config import IpfsConfig
    from attest.ipfs.cid import CID
    from attest.ipfs.local import LocalStore


def _config() -> IpfsConfig:
    from attest.config import load_config

    return load_config().ipfs


def _local() -> LocalStore:
    from attest.ipfs.local import LocalStore

    return LocalStore()


def _cid(text: str) -> CID:
    from attest.ipfs.cid import CID

    return CID.parse(text)


@click.group()
def ipfs() -> None:
    """Content addressing: the local blockstore (under ATTEST_HOME), CAR files, and configured remotes."""


@ipfs.command("add")
@click.argument("file", type=click.File("rb"))
@click.option("--cid-version", type=click.Choice(["0", "1"]), help="0 as plain `ipfs add`; default from config (1).")
def ipfs_add(file: BinaryIO, cid_version: str | None) -> None:
    """Add FILE (or - for stdin) to the local store and print its CID, the one `ipfs add` gives."""
    version = int(cid_version) if cid_version is not None else _config().cid_version
    click.echo(str(_local().put_stream(file, cid_version=version)))


@ipfs.command("cat")
@click.argument("cid")
def ipfs_cat(cid: str) -> None:
    """Write the verified bytes of CID to stdout: the local store first, then the configured readers."""
    from attest.ipfs.remotes import Remotes, read_anywhere

    parsed = _cid(cid)
    config = _config()
    sources = (_local(), *Remotes.from_config(config).readers)
    data, _source = read_anywhere(parsed, sources, timeout_s=config.timeout_s)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@ipfs.group("car")
def car() -> None:
    """CAR v1 files: the exact DAG, for any pinning service or `ipfs dag import`."""


@car.command("export")
@click.argument("cid")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
def car_export(cid: str, file: str) -> None:
    """Write the whole DAG of CID from the local store to FILE."""
    import os
    import tempfile

    parsed = _cid(cid)
    local = _local()
    directory = os.path.dirname(os.path.abspath(file))
    # Write beside the target and rename, so a failure never leaves a truncated CAR under FILE's name.
    fd, tmp = tempfile.mkstemp(prefix=".car-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            local.export_car(parsed, out)
        os.replace(tmp, file)
    except BaseException:
        os.unlink(tmp)
        raise
    click.echo(f"wrote {file} ({os.path.getsize(file)} bytes, root {parsed})")


@car.command("import")
@click.argument("file", type=click.File("rb"))
def car_import(file: BinaryIO) -> None:
    """Verify every block of FILE (or - for stdin) and add them to the local store; print the roots."""
    for root in _local().import_car(file):
        click.echo(str(root))


@ipfs.command("pin")
@click.argument("cid")
def ipfs_pin(cid: str) -> None:
    """Pin CID to every configured remote (Kubo node, pinning services); one line per remote.

    The bytes come from the local store, or from a configured reader, verified, before anything is sent.
    """
    from attest.errors import StoreError
    from attest.ipfs.remotes import Remotes, read_anywhere, replicate

    parsed = _cid(cid)
    config = _config()
    remotes = Remotes.from_config(config)
    if not remotes.pinners:
        raise StoreError(
            "no remote to pin to: set kubo_api or add an [[ipfs.pinning]] service in config.toml (or ATTEST_IPFS_API)"
        )
    data, _source = read_anywhere(parsed, (_local(), *remotes.readers), timeout_s=config.timeout_s)
    results = replicate(parsed, data, remotes.pinners)
    for result in results:
        line = f"{result.status:<8} {result.store}"
        click.echo(f"{line}  {result.detail}" if result.detail else line)
    failed = [r.store for r in results if not r.ok]
    if failed:
        raise StoreError(f"pinning failed at {', '.join(failed)}; the other remotes hold {parsed}")

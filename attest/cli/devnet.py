"""`attest devnet`: the local chain (anvil with the real UMA contracts and our AttestationRegistry)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from attest.networks import DEVNET_PORT

if TYPE_CHECKING:
    from attest.devnet import Devnet, DevnetStatus


def _devnet() -> Devnet:
    from attest.devnet import Devnet

    return Devnet()


@click.group()
def devnet() -> None:
    """The local chain: anvil with the real UMA contracts and our AttestationRegistry."""


@devnet.command("up")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help=f"RPC port (default: ATTEST_DEVNET_PORT, else the port of the last `up`, else {DEVNET_PORT}).",
)
@click.option(
    "--bond-decimals",
    type=click.IntRange(0, 36),
    default=None,
    help="Decimals of the devnet's bond token when it is first deployed (default 6, as USDC on public chains).",
)
def devnet_up(port: int | None, bond_decimals: int | None) -> None:
    """Start the devnet (deploying on first start) and print its status."""
    status, already = _devnet().up(port, bond_decimals=bond_decimals)
    click.echo("devnet already running" if already else "devnet started")
    _print_status(status)


@devnet.command("down")
def devnet_down() -> None:
    """Stop the devnet; its chain is kept for the next `up`."""
    click.echo("devnet stopped; chain state kept" if _devnet().down() else "devnet was not running")


@devnet.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def devnet_status(as_json: bool) -> None:
    """Addresses, block number, chain time and whether the node is alive."""
    status = _devnet().status()
    if as_json:
        click.echo(json.dumps(asdict(status), indent=2))
    else:
        _print_status(status)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in `90`, `90s`, `30m`, `2h`, `1d` or a sum of them (`1h30m`)."""
    import re

    from attest.errors import DevnetError

    parts = re.findall(r"(\d+)([smhd]?)", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise DevnetError(
            f"{text!r} is not a duration; write seconds or a number with s, m, h or d, such as 2h or 1h30m"
        )
    return sum(int(n) * _UNITS[u or "s"] for n, u in parts)


@devnet.command("advance")
@click.argument("duration", required=False)
@click.option(
    "--blocks",
    type=click.IntRange(1, 1_000_000),
    help="Mine this many blocks (a DAO vote's delay and period count blocks).",
)
def devnet_advance(duration: str | None, blocks: int | None) -> None:
    """Move the devnet's clock DURATION ahead (90s, 30m, 2h, 1d, 1h30m) and mine a block: to settle an
    assertion whose liveness would otherwise take hours. `--blocks N` mines N blocks (with or without DURATION)."""
    from attest.errors import DevnetError

    if duration is None and blocks is None:
        raise DevnetError("say how far: a DURATION (90s, 30m, 2h) or --blocks N, or both")
    node = _devnet()
    if blocks is not None:
        click.echo(f"block:       {node.mine(blocks)}")
    if duration is not None:
        now = node.advance(parse_duration(duration))
        click.echo(f"chain time:  {datetime.fromtimestamp(now, tz=UTC):%Y-%m-%d %H:%M:%S} UTC")


@devnet.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def devnet_reset(yes: bool) -> None:
    """Stop the devnet and delete its chain and deployment."""
    if not yes:
        click.confirm("Delete the devnet chain, its contracts and every assertion on it?", abort=True)
    _devnet().reset()
    click.echo("devnet reset; `attest devnet up` starts a fresh chain")


def _print_status(status: DevnetStatus) -> None:
    from attest.accounts import DEV_ACCOUNTS, dev_account

    if status.running:
        assert status.chain_time is not None
        chain_time = datetime.fromtimestamp(status.chain_time, tz=UTC)
        click.echo(f"node:        alive at {status.rpc_url} (pid {status.pid}), chain id 31337")
        click.echo(f"block:       {status.block_number}")
        click.echo(
            f"chain time:  {chain_time:%Y-%m-%d %H:%M:%S} UTC ({chain_time.astimezone():%Y-%m-%d %H:%M:%S %Z} local)"
        )
    else:
        click.echo("node:        not running (`attest devnet up` starts it)")
    deployment = status.deployment
    if deployment is None:
        click.echo("contracts:   not deployed yet")
        return
    click.echo(f"deployed:    block {deployment.block_number} by {deployment.deployer}")
    params = deployment.params
    if "currency_decimals" in params:
        click.echo(f"bond token:  {params.get('currency_symbol', '?')} with {params['currency_decimals']} decimals")
    for name, address in deployment.contract_addresses().items():
        click.echo(f"  {name:<22} {address}")
    click.echo(f"dev accounts: {DEV_ACCOUNTS} funded with ETH and bond tokens, e.g. {dev_account(1).address}")

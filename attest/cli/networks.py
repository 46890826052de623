"""`attest networks`: the UMA networks llm-attest knows."""

from __future__ import annotations

import click

from attest.networks import NETWORKS, Network


@click.group(invoke_without_command=True)
@click.pass_context
def networks(ctx: click.Context) -> None:
    """The UMA networks llm-attest knows."""
    if ctx.invoked_subcommand is None:
        for network in NETWORKS:
            click.echo(
                f"{network.name:<13} {network.chain_id:>9}  {network.oracle_kind.value:<5} "
                f"{network.oov3 or '(devnet deployment)'}"
            )


@networks.command("show")
@click.argument("network")
def networks_show(network: str) -> None:
    """One network by name or chain id, with the config file's settings for it."""
    from attest.config import load_config

    config = load_config()
    net = config.resolve_network(network)
    settings = config.network(net.name)
    _print_network(net)
    if settings.registry is not None:
        registry = settings.registry
    elif net.name == "local":
        registry = "from the devnet deployment (attest devnet status)"
    else:
        registry = f"none configured; deploy one: attest registry deploy --network {net.name}"
    click.echo(f"registry:    {registry}")
    if net.name != "local":
        click.echo(f"min liveness: {net.default_min_liveness} s for a registry deployed here (--min-liveness)")
    for key in ("oracle", "currency", "identifier", "confirmations"):
        value = getattr(settings, key)
        if value is not None:
            click.echo(f"{key + ':':<12} {value} (config)")


def _print_network(network: Network) -> None:
    click.echo(f"name:        {network.name}")
    click.echo(f"chain id:    {network.chain_id}")
    click.echo(f"OOv3:        {network.oov3 or 'from the devnet deployment (attest devnet status)'}")
    click.echo(f"oracle:      {network.oracle_kind.value}")
    click.echo(f"identifier:  {network.default_identifier}")
    click.echo(f"oracle UI:   {network.ui_note()}")

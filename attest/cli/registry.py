"""`attest registry`: our AttestationRegistry on a network."""

from __future__ import annotations

import click


@click.group()
def registry() -> None:
    """Our AttestationRegistry, which counts an assertion only if OOv3 resolved it true within the rules."""


@registry.command("deploy")
@click.option("--network", help="sepolia, ethereum, ... (default: the config's [defaults] network).")
@click.option("--account", help="ape keystore alias (or dev:N on the devnet) that pays for the deploy.")
@click.option(
    "--min-liveness",
    type=click.IntRange(1, 2**64 - 1),
    help="Shortest liveness the registry counts, in seconds (default: 3600 on mainnets, 900 on testnets).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@click.option("--save", is_flag=True, help="Write the registry address into the config file.")
@click.option("--force", is_flag=True, help="Deploy even though the network already has a registry.")
def registry_deploy(
    network: str | None, account: str | None, min_liveness: int | None, yes: bool, save: bool, force: bool
) -> None:
    """Deploy an AttestationRegistry for the network's OOv3: checked, priced and confirmed before it is sent."""
    from attest.accounts import load_account
    from attest.config import check_network_key_free, config_path, load_config, network_line, save_network_key
    from attest.connect import connect
    from attest.flow.registry import deploy, native, plan_deploy
    from attest.ledger import DeployLog

    config = load_config()
    net = config.resolve_network(network or config.defaults.network)
    path = config_path()
    if save:  # even with --force: a line of the file is never overwritten
        check_network_key_free(path, net.name, "registry", "0x…")
    ctx = connect(net.name, config=config)
    loaded = load_account(account, net.name, default=config.defaults.account)
    if loaded.warning:
        click.echo(loaded.warning, err=True)
    liveness = min_liveness or net.default_min_liveness
    with DeployLog() as log:
        plan = plan_deploy(ctx, loaded.account, liveness, log, force=force)
        click.echo(f"network:      {net.name} (chain {net.chain_id})")
        click.echo(f"OOv3:         {plan.oov3}")
        click.echo(f"min liveness: {plan.min_liveness} s")
        click.echo(f"deployer:     {plan.deployer}")
        if plan.quote is None:
            assert plan.earlier is not None
            click.echo(f"resuming:     {plan.earlier.hash_hex} ({plan.earlier.status}); nothing new is signed")
        else:
            q = plan.quote
            click.echo(
                f"cost:         at most {native(q.cost, net.native_symbol)} ({q.gas:,} gas x "
                f"{q.fee_per_gas / 1e9:.3f} gwei; balance {native(q.balance, net.native_symbol)})"
            )
            if not yes:
                click.confirm("Deploy?", abort=True)
        deployed = deploy(ctx, loaded.account, plan, log, force=force)
    click.echo(f"registry:     {deployed.address} (tx {deployed.tx_hash}, block {deployed.block_number})")
    if save:
        save_network_key(path, net.name, "registry", deployed.address)
        click.echo(f"saved:        [networks.{net.name}] registry in {path}")
    else:
        click.echo(f"add to {path}:")
        click.echo(network_line(net.name, "registry", deployed.address))

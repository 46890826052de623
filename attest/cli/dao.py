"""`attest dao`: the proposal cycle of the DAO that governs the knowledge base; `attest kb propose | revoke`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from attest.cli.output import echo_json, short, table

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from attest.chain.dao import Governor
    from attest.connect import ChainContext
    from attest.flow.governance import ChangeResult
    from attest.ledger import DeployLog

_NETWORK = click.option("--network", help="Network name (default: the config's [defaults] network).")
_ACCOUNT = click.option("--account", help="ape keystore alias (or dev:N on the devnet) that signs.")


@dataclass
class _Session:
    ctx: ChainContext
    account: LocalAccount
    log: DeployLog


@contextmanager
def _session(network: str | None, account: str | None) -> Iterator[_Session]:
    from attest.accounts import load_account
    from attest.config import load_config
    from attest.connect import connect
    from attest.ledger import DeployLog

    config = load_config()
    ctx = connect(network, config=config)
    loaded = load_account(account, ctx.network.name, default=config.defaults.account)
    if loaded.warning:
        click.echo(loaded.warning, err=True)
    with DeployLog() as log:
        yield _Session(ctx, loaded.account, log)


def _dao(ctx: ChainContext) -> Governor:
    from attest.flow.governance import require_dao

    return require_dao(ctx)


def _utc(timestamp: int) -> str:
    return f"{datetime.fromtimestamp(timestamp, tz=UTC):%Y-%m-%d %H:%M:%S} UTC"


@click.group()
def dao() -> None:
    """The DAO that decides which documents the knowledge base may read: its proposals, votes, queue and execution."""


@dao.command("proposals")
@_NETWORK
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (full ids).")
def dao_proposals(network: str | None, as_json: bool) -> None:
    """Every proposal of the DAO, oldest first, with its state and votes."""
    from attest.config import load_config
    from attest.connect import connect
    from attest.flow.governance import proposals

    ctx = connect(network, config=load_config())
    views = proposals(ctx, _dao(ctx))
    if as_json:
        echo_json(
            [
                {
                    "id": v.proposal.hex_id,
                    "state": v.state,
                    "description": v.proposal.description,
                    "proposer": v.proposal.proposer,
                    "vote_start": v.proposal.vote_start,
                    "vote_end": v.proposal.vote_end,
                    "for": str(v.tally.for_),
                    "against": str(v.tally.against),
                    "abstain": str(v.tally.abstain),
                    "quorum": str(v.quorum),
                    "eta": v.eta or None,
                }
                for v in views
            ]
        )
        return
    if not views:
        click.echo("no proposals yet; `attest kb propose CID --contributor ADDR` makes one")
        return
    rows = [
        (
            v.proposal.hex_id[:12],
            v.state + (f" until {_utc(v.eta)}" if v.state == "queued" else ""),
            f"{v.tally.for_ / 1e18:g}/{v.tally.against / 1e18:g}/{v.tally.abstain / 1e18:g}",
            f"{v.proposal.vote_start + 1}-{v.proposal.vote_end}",
            short(v.proposal.description, 70),
        )
        for v in views
    ]
    click.echo(table(("id", "state", "for/against/abstain", "vote blocks", "description"), rows))


@dao.command("vote")
@click.argument("proposal_id")
@click.option("--support", type=click.Choice(["for", "against", "abstain"]), required=True)
@_NETWORK
@_ACCOUNT
def dao_vote(proposal_id: str, support: str, network: str | None, account: str | None) -> None:
    """Vote on PROPOSAL_ID (its id or a unique prefix of it) with the account's delegated votes."""
    from attest.flow.governance import find_proposal, vote

    with _session(network, account) as s:
        gov = _dao(s.ctx)
        p = find_proposal(s.ctx, gov, proposal_id)
        sent = vote(s.ctx, s.account, s.log, gov, p, support)
        click.echo(f"voted:    {support} on {p.hex_id} by {s.account.address}")
        click.echo(f"tx:       {sent.tx_hash} (block {sent.block_number})")
        click.echo(f"state:    {gov.state(p.id)} (the vote closes after block {p.vote_end})")


@dao.command("queue")
@click.argument("proposal_id")
@_NETWORK
@_ACCOUNT
def dao_queue(proposal_id: str, network: str | None, account: str | None) -> None:
    """Queue PROPOSAL_ID, which passed, in the timelock (anyone may)."""
    from attest.flow.governance import find_proposal, queue

    with _session(network, account) as s:
        gov = _dao(s.ctx)
        p = find_proposal(s.ctx, gov, proposal_id)
        sent, eta = queue(s.ctx, s.account, s.log, gov, p)
        click.echo(f"queued:   {p.hex_id} (tx {sent.tx_hash}, block {sent.block_number})")
        click.echo(f"eta:      {_utc(eta)}; then `attest dao execute {p.hex_id[:12]}`")


@dao.command("execute")
@click.argument("proposal_id")
@_NETWORK
@_ACCOUNT
def dao_execute(proposal_id: str, network: str | None, account: str | None) -> None:
    """Execute PROPOSAL_ID once its timelock delay has passed (anyone may)."""
    from attest.flow.governance import execute, find_proposal

    with _session(network, account) as s:
        gov = _dao(s.ctx)
        p = find_proposal(s.ctx, gov, proposal_id)
        sent = execute(s.ctx, s.account, s.log, gov, p)
        click.echo(f"executed: {p.hex_id} (tx {sent.tx_hash}, block {sent.block_number})")
        click.echo(f"          {short(p.description, 100)}")


def _print_change(result: ChangeResult) -> None:
    if result.proposal is None:
        verb = "approved" if result.kind == "approve" else "revoked"
        click.echo(f"{verb}: {result.cid} from {result.contributor} at block {result.sent.block_number}")
        click.echo(f"tx:       {result.sent.tx_hash}")
        return
    p = result.proposal
    click.echo(f"proposal: {p.hex_id}")
    click.echo(f"          {short(p.description, 100)}")
    click.echo(f"tx:       {result.sent.tx_hash} (block {result.sent.block_number})")
    click.echo("state:    pending")
    click.echo(f"vote:     after block {p.vote_start} until block {p.vote_end}")
    click.echo(f"next:     `attest dao vote {p.hex_id[:12]} --support for|against|abstain`")


def _change_command(kind: str) -> click.Command:
    @click.command(kind if kind == "revoke" else "propose")
    @click.argument("cid")
    @click.option("--contributor", required=True, help="The contributor's 0x address.")
    @click.option("--description", help="The proposal's text (default: says what it changes).")
    @_NETWORK
    @_ACCOUNT
    def command(cid: str, contributor: str, description: str | None, network: str | None, account: str | None) -> None:
        from attest.flow.governance import change

        with _session(network, account) as s:
            _print_change(change(s.ctx, s.account, s.log, kind, cid, contributor, description))  # type: ignore[arg-type]

    return command


kb_propose = _change_command("approve")
kb_propose.help = (
    "Propose that CONTRIBUTOR may put the document CID into the knowledge base: a DAO proposal, or the approval "
    "itself when an account governs the knowledge base (sign with it)."
)
kb_revoke = _change_command("revoke")
kb_revoke.help = "Revoke CONTRIBUTOR's approval of CID: a DAO proposal, or directly by an account governor."


@click.command("deploy-registry")
@click.option("--governor", required=True, help="Who approves and revokes: an account, or a DAO's timelock.")
@_NETWORK
@_ACCOUNT
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@click.option("--save", is_flag=True, help="Write the registry address into the config file (kb_registry).")
@click.option("--force", is_flag=True, help="Deploy even though the network already has a KnowledgeRegistry.")
def kb_deploy_registry(
    governor: str, network: str | None, account: str | None, yes: bool, save: bool, force: bool
) -> None:
    """Deploy a KnowledgeRegistry governed by GOVERNOR: checked, priced and confirmed before it is sent."""
    from attest.config import check_network_key_free, config_path, network_line, save_network_key
    from attest.flow.governance import deploy_registry, plan_registry
    from attest.flow.registry import native

    with _session(network, account) as s:
        net = s.ctx.network
        path = config_path()
        if save:  # a line of the file is never overwritten
            check_network_key_free(path, net.name, "kb_registry", "0x…")
        plan = plan_registry(s.ctx, s.account, governor, s.log, force=force)
        click.echo(f"network:      {net.name} (chain {net.chain_id})")
        click.echo(f"governor:     {plan.governor}")
        click.echo(f"deployer:     {plan.deployer}")
        if plan.quote is None:
            assert plan.earlier is not None
            click.echo(f"resuming:     {plan.earlier.hash_hex} ({plan.earlier.status}); nothing new is signed")
        else:
            q = plan.quote
            click.echo(f"cost:         at most {native(q.cost, net.native_symbol)} ({q.gas:,} gas)")
            if not yes:
                click.confirm("Deploy?", abort=True)
        deployed = deploy_registry(s.ctx, s.account, plan, s.log, force=force)
    click.echo(f"registry:     {deployed.address} (tx {deployed.tx_hash}, block {deployed.block_number})")
    if save:
        save_network_key(path, net.name, "kb_registry", deployed.address)
        click.echo(f"saved:        [networks.{net.name}] kb_registry in {path}")
    else:
        click.echo(f"add to {path}:")
        click.echo(network_line(net.name, "kb_registry", deployed.address))

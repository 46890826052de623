"""The `attest` command line. Thin: parses options, calls the library, prints. Expected failures
(`AttestError`) become one line on stderr and exit code 1; anything else is a bug and keeps its traceback.

Each command group lives in its own module; the chain and IPFS stacks load only for the commands that use
them, so `attest --help` stays instant.
"""

from __future__ import annotations

import click

from attest import __version__
from attest.cli.accounts import accounts
from attest.cli.attestations import ask, discard, export, list_, resume, settle, status
from attest.cli.batch import batch
from attest.cli.config import config
from attest.cli.devnet import devnet
from attest.cli.doctor import doctor
from attest.cli.edge import run_cli
from attest.cli.ipfs import ipfs
from attest.cli.kb import kb
from attest.cli.networks import networks
from attest.cli.prompts import prompts
from attest.cli.ranking import rank
from attest.cli.registry import registry
from attest.cli.serve import serve
from attest.cli.verify import verify

__all__ = ["cli", "main"]


@click.group()
@click.version_option(__version__, prog_name="attest")
def cli() -> None:
    """Accountable LLM answers: signed records on IPFS, asserted through UMA's Optimistic Oracle V3."""


for command in (ask, rank, verify, status, list_, settle, resume, discard, export):
    cli.add_command(command)
cli.add_command(doctor)
cli.add_command(batch)
cli.add_command(devnet)
cli.add_command(networks)
cli.add_command(registry)
cli.add_command(ipfs)
cli.add_command(kb)
cli.add_command(prompts)
cli.add_command(config)
cli.add_command(accounts)
cli.add_command(serve)


def main() -> None:
    run_cli(cli)

"""The `disputer` command line."""

from __future__ import annotations

import click

from attest import __version__


@click.group()
@click.version_option(__version__, prog_name="disputer")
def cli() -> None:
    """Watch llm-attest assertions and dispute wrong answers. The watcher, judge and voter are being built
    (see the README's roadmap); this release ships the command's entry point only."""


def main() -> None:
    cli.main()

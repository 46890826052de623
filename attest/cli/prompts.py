"""`attest prompts`: the versioned prompt templates this release ships, and their sha256 as records name them."""

from __future__ import annotations

import click

from attest.prompts import catalog


@click.group()
def prompts() -> None:
    """Prompt templates shipped with llm-attest, named id@version and pinned by sha256."""


@prompts.command("list")
def prompts_list() -> None:
    """Every template: id@version, sha256 of its file, and what it is for."""
    for template in catalog.list():
        click.echo(f"{template.ref:<22} {template.sha256}  {template.description}")


@prompts.command("show")
@click.argument("ref")
@click.option("--raw", is_flag=True, help="Only the file's exact bytes, so `| sha256sum` gives the recorded hash.")
def prompts_show(ref: str, raw: bool) -> None:
    """One template by id@version (or id, for its latest version)."""
    template = catalog.get(ref)
    if raw:
        click.get_binary_stream("stdout").write(template.source.encode("utf-8"))
        return
    click.echo(f"template: {template.ref}")
    click.echo(f"sha256:   {template.sha256}")
    click.echo("")
    click.echo(template.source, nl=False)

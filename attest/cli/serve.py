"""`attest serve [--host] [--port] [--network]` and `attest serve keys create | list | revoke`."""

from __future__ import annotations

import ipaddress

import click

from attest.cli.output import table


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost may resolve anywhere
        return False


@click.group(invoke_without_command=True)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; off loopback, keys are required."
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--network", help="The network records are asserted on (default: [serve] network, else [defaults]).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, network: str | None) -> None:
    """Attested answers over HTTP, OpenAI-compatible: POST /v1/chat/completions and /v1/attestations."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from attest.config import load_config
    from attest.errors import ServeError
    from attest.serve import create_app
    from attest.serve.keys import KeyBook

    config = load_config()
    settings = config.serve.model_copy(update={"network": network or config.serve.network or config.defaults.network})
    config = config.model_copy(update={"serve": settings})
    config.resolve_network(str(settings.network))  # an unknown network is refused before binding
    with KeyBook() as book:
        keys = book.active()
    if not is_loopback(host) and keys == 0:
        raise ServeError(
            f"refusing to serve on {host} without API keys: create one with `attest serve keys create NAME`, "
            "or bind to 127.0.0.1"
        )
    app = create_app(config, require_keys=keys > 0)
    click.echo(
        f"attest serve on http://{host}:{port} (network {settings.network}, records asserted: "
        f"{settings.assert_mode}, API keys {'required' if keys else 'off (loopback)'})",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, ws="none")


@serve.group()
def keys() -> None:
    """API keys: the token is printed once, at creation; only its SHA-256 is kept."""


@keys.command("create")
@click.argument("name")
def create(name: str) -> None:
    """A new key named NAME (who or what uses it)."""
    from attest.serve.keys import KeyBook

    with KeyBook() as book:
        key, token = book.create(name)
    click.echo(f"API key #{key.id} ({key.name}); shown this once, keep it secret:", err=True)
    click.echo(token)


@keys.command("list")
def list_keys() -> None:
    """Every key: its number, name, first characters, creation, revocation and records made today."""
    from attest.serve.keys import KeyBook

    with KeyBook() as book:
        rows = [
            (str(k.id), k.name, k.hint + "…", k.created_at, k.revoked_at or "active", str(book.records_today(k.id)))
            for k in book.list()
        ]
    if not rows:
        click.echo("No API keys: `attest serve keys create NAME`.")
        return
    click.echo(table(["#", "name", "key", "created", "revoked", "records today (UTC)"], rows))


@keys.command("revoke")
@click.argument("key_id", type=int)
def revoke(key_id: int) -> None:
    """Revoke key KEY_ID: requests with it are refused (401) from now on."""
    from attest.serve.keys import KeyBook

    with KeyBook() as book:
        key = book.revoke(key_id)
    click.echo(f"API key #{key.id} ({key.name}) revoked at {key.revoked_at}.")

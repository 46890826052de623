"""`attest ui`: the dashboard, served on 127.0.0.1 by default."""

from __future__ import annotations

import click


@click.command()
@click.option("--network", default=None, help="The network whose assertions to show (default: the config's).")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--allow-actions", is_flag=True, help="Offer settle forms (posting through `attest settle`'s own flow).")
def ui(network: str | None, port: int, host: str, allow_actions: bool) -> None:
    """Serve the dashboard: every assertion on the network's OOv3 (ours marked), each one's claim, record, cited
    passages, verification checks and timeline, the knowledge base and this home's attestations. Read-only unless
    --allow-actions."""
    import uvicorn

    from attest.ui.app import create_app

    app = create_app(network, allow_actions=allow_actions)
    click.echo(f"attest ui: http://{host}:{port}/ ({'actions allowed' if allow_actions else 'read-only'})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")

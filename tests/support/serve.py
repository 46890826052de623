"""`attest serve`'s app on a free loopback port, in a thread of the test process, for real HTTP clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from attest.config import Config
from attest.localnet import HOST
from attest.serve import create_app
from tests.support.ports import free_port


@contextmanager
def serving(config: Config, *, require_keys: bool = False, flush_poll_s: float = 0.2) -> Iterator[str]:
    """The base URL (`http://127.0.0.1:PORT`) while the server runs; stopped and joined on exit."""
    app = create_app(config, require_keys=require_keys, flush_poll_s=flush_poll_s)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=free_port(), log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{HOST}:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)

"""The server's batch loop (`[serve] assert = "batch"`): flush the queue whenever `[batch] max_records` are queued
or the oldest has waited `max_age_s`, as `attest batch run` does.

Several servers may share one ledger (`[storage] url`): each poll, a server tries to lead its account's batches
on its network (attest.locks.BatchLeadership), and only the leader flushes and asserts them; the others answer
and queue. A server that starts, or takes over from a leader that died, first finishes the batches left between
building and asserted and asserts what is queued, at once rather than when it would have come due. On SQLite
every server leads, as before.

A leader learns that its lock's session ended only at its next poll, so one whose session the database ends while
the process lives on (a network partition, a database restart) may finish the flush it is in while another
already leads. Both then drive the same batches through the one outbox, which reads each intent again once it
holds the signing lock (shared through the same server) and settles a transaction another process signed rather
than sign a second: the overlap costs a little work, not a second assertion.
"""

from __future__ import annotations

import asyncio
import logging

from attest.accounts import load_account
from attest.config import Config
from attest.errors import AttestError
from attest.flow.batch import due, flush, resume_batches
from attest.locks import BatchLeadership, shared_server
from attest.serve.metrics import Metrics

log = logging.getLogger("attest.serve")


def own_signer(config: Config) -> tuple[int, str]:
    """(chain id, account address) the server asserts for: its `[serve]` network and account."""
    network = config.resolve_network(config.serve.network or config.defaults.network)
    loaded = load_account(config.serve.account, network.name, default=config.defaults.account)
    return network.chain_id, loaded.account.address


async def run_flusher(config: Config, poll_s: float, metrics: Metrics) -> None:
    leadership = BatchLeadership(shared_server())
    signer: tuple[int, str] | None = None
    caught_up = False  # since this server last became leader
    try:
        while True:
            try:
                if signer is None:
                    signer = await asyncio.to_thread(own_signer, config)
                leading = await asyncio.to_thread(leadership.lead, *signer)
                metrics.batch_leader.labels(str(signer[0]), signer[1]).set(1 if leading else 0)
                if not leading:
                    caught_up = False
                elif not caught_up or await asyncio.to_thread(due, config.batch.max_records, config.batch.max_age_s):
                    if not caught_up:
                        await asyncio.to_thread(resume_batches, config=config, lead=leadership.lead)
                    outcomes = await asyncio.to_thread(
                        flush, network=config.serve.network, config=config, limit=config.batch.max_records,
                        lead=leadership.lead,
                    )  # fmt: skip
                    caught_up = True
                    for o in outcomes:
                        log.info("batch #%d: %d records, assertion %s", o.batch.id, o.batch.count, o.batch.assertion_id)
            except AttestError as err:  # the chain, IPFS or the database down: the queue waits, the next round tries
                log.warning("batch flush failed, will retry: %s", err)
            except Exception:
                # A bug: its traceback goes to the log, and the loop goes on, since a leader whose loop died would
                # keep the lead (its session lives on) and no server would assert the account's batches.
                log.exception("batch flush failed unexpectedly, will retry")
            await asyncio.sleep(poll_s)
    finally:
        leadership.close()

"""The server's batch loop (`[serve] assert = "batch"`): first finish the batches a crash left and assert what it
left queued, then flush the queue whenever `[batch] max_records` are queued or the oldest has waited `max_age_s`, as
`attest batch run` does."""

from __future__ import annotations

import asyncio
import logging

from attest.config import Config
from attest.errors import AttestError
from attest.flow.batch import due, flush, resume_batches

log = logging.getLogger("attest.serve")


async def run_flusher(config: Config, poll_s: float) -> None:
    resumed = False
    while True:
        try:
            if not resumed:
                await asyncio.to_thread(resume_batches, config=config)
            # On start, whatever a crash left queued is asserted at once, not when it would have come due.
            if not resumed or await asyncio.to_thread(due, config.batch.max_records, config.batch.max_age_s):
                resumed = True
                outcomes = await asyncio.to_thread(
                    flush, network=config.serve.network, config=config, limit=config.batch.max_records
                )
                for o in outcomes:
                    log.info("batch #%d: %d records, assertion %s", o.batch.id, o.batch.count, o.batch.assertion_id)
        except AttestError as err:  # the chain or IPFS down: the queue waits, the next round tries again
            log.warning("batch flush failed, will retry: %s", err)
        await asyncio.sleep(poll_s)

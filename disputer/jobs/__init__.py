"""What the daemon does with the chain, one module per job: dispute, evidence, vote, settle.

Each job is a function over explicit inputs (the store, the actor, the oracle or wallet, the chain time) that
returns what it sent; the loop only reports it. Run twice in a row, a job sends nothing the second time: the
chain (disputed, priced, settled) and the outbox say what is already done.
"""

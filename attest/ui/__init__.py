"""The local dashboard (`attest ui`): server-rendered pages over the ledger, the chain and the disputer's data."""

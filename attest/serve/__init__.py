"""`attest serve`: attested RAG answers over HTTP in the OpenAI Chat Completions shape (FastAPI on uvicorn).

Every answer goes through the one ask flow (attest/flow/ask.py): its record is signed, pinned and in the ledger
before the response is sent, then asserted in a Merkle batch, on its own, or not at all (`[serve] assert`).
"""

from attest.serve.app import create_app

__all__ = ["create_app"]

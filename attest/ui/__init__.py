"""The dashboard (`attest ui`): server-rendered pages over an index of OOv3's events, the records on IPFS, the
verification checks and this home's ledger (app.py, pages.py, index.py, scan.py, markdown.py, templates/)."""

"""The dashboard (`attest ui`): server-rendered pages over an index of OOv3's events, the records on IPFS, the
verification checks, this home's ledger and the disputer's data (app.py, pages.py, index.py, scan.py, markdown.py,
charts.py, series.py, templates/)."""

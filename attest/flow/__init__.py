"""The product's jobs, composed from the library: ask (retrieve, answer, sign, pin, assert), resume, settle,
status and export. Only the CLI (and the disputer, for the outbox and the bond token) import from here."""

__all__ = ["ask", "export", "lifecycle", "outbox", "token"]

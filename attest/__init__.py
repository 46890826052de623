"""llm-attest: accountable LLM answers, pinned to IPFS and asserted through UMA's Optimistic Oracle V3.

The layers, top to bottom (pyproject.toml [tool.importlinter] checks them; a module imports only from below):
cli; flow | verify; connect; devnet; chain; claim | kb | ledger; ipfs; config; llm | accounts | record | sqlitedb
| networks | localnet; prompts | text; paths | jsonsafe | context; errors. The disputer is built on top and is
never imported from here. `__all__` names the public modules and packages; names starting with `_` are private.
"""

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "accounts",
    "chain",
    "claim",
    "cli",
    "config",
    "connect",
    "context",
    "devnet",
    "errors",
    "flow",
    "ipfs",
    "jsonsafe",
    "kb",
    "ledger",
    "llm",
    "localnet",
    "networks",
    "paths",
    "prompts",
    "record",
    "sqlitedb",
    "text",
    "verify",
]

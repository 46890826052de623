"""llm-attest: accountable LLM answers, pinned to IPFS and asserted through UMA's Optimistic Oracle V3."""

__version__ = "0.1.0"

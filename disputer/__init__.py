"""The disputer: watches llm-attest assertions, judges them and disputes wrong ones (built on `attest`)."""

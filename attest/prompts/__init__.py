"""Versioned prompt templates shipped with llm-attest, named `id@version` and pinned by the sha256 of their file."""

from attest.prompts.catalog import RenderedPrompt, Template, fence_for, get
from attest.prompts.catalog import list as list_templates

__all__ = ["RenderedPrompt", "Template", "fence_for", "get", "list_templates"]

"""Model providers behind one interface: OpenAI (and OpenAI-compatible servers), Anthropic, and the offline
extractive provider. Each answer carries the metadata a record needs (`model_metadata_for_record`)."""

from attest.llm.base import (
    Answer,
    GenerationParams,
    ModelMetadata,
    Provider,
    RetryPolicy,
    SdkInfo,
    SentParams,
    Usage,
    citations_in,
    model_metadata_for_record,
)
from attest.llm.registry import (
    AUTO,
    Budgeted,
    ProviderSpec,
    check_budget,
    default_provider,
    default_provider_name,
    get_provider,
    provider_from_config,
    provider_names,
    provider_spec,
    register_provider,
)

__all__ = [
    "AUTO",
    "Answer",
    "Budgeted",
    "GenerationParams",
    "ModelMetadata",
    "Provider",
    "ProviderSpec",
    "RetryPolicy",
    "SdkInfo",
    "SentParams",
    "Usage",
    "check_budget",
    "citations_in",
    "default_provider",
    "default_provider_name",
    "get_provider",
    "model_metadata_for_record",
    "provider_from_config",
    "provider_names",
    "provider_spec",
    "register_provider",
]

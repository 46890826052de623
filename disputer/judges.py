"""Which judge a disputer runs, from `[llm]`: an LLM judge when the provider can grade and has its key (or is a
keyless compatible server), else the offline judge `[disputer] offline_judge` names (grounding-v2 by default,
grounding-v1 on request). The one place that knows every judge, so no judge module imports another."""

from __future__ import annotations

import logging

from attest.config import LlmConfig
from attest.errors import MissingKey
from attest.llm.base import RetryPolicy
from attest.llm.registry import AUTO, default_provider_name, provider_from_config, provider_spec
from disputer.calibration import CalibrationMap
from disputer.grounding import GROUNDING_JUDGE, GroundingJudge
from disputer.grounding_v2 import GROUNDING_V2_JUDGE, GroundingV2Judge
from disputer.judge import Judge, LlmJudge

log = logging.getLogger(__name__)


def judge_from_config(
    config: LlmConfig | None,
    samples: int = 3,
    *,
    calibration: CalibrationMap | None = None,
    retry: RetryPolicy | None = None,
    offline: str = GROUNDING_V2_JUDGE,
) -> Judge:
    """A calibration map must have been fitted for the judge chosen."""
    config = config or LlmConfig()
    spec = provider_spec(default_provider_name() if config.provider == AUTO else config.provider)
    if spec.grades:
        try:
            provider = provider_from_config(config, retry=retry)
        except MissingKey as err:
            log.warning("judging offline with %s: %s", offline, err)
        else:
            return LlmJudge(provider, config.model or spec.default_model, samples=samples, calibration=calibration)
    if offline == GROUNDING_JUDGE:
        return GroundingJudge(calibration=calibration)
    return GroundingV2Judge(calibration=calibration)

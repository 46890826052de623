"""The `[disputer]` table of the llm-attest config file (`attest.config.config_path()`).

[disputer]
threshold = 0.5              # dispute when the calibrated score is below this
safety_margin_s = 600        # never dispute an assertion expiring sooner than this
max_bond_per_dispute = "500" # in bond-currency units; unset: no cap
total_budget = "5000"        # bonds at stake in open disputes at once, in currency units; unset: no cap
samples = 3                  # judge samples per answer (median)
concurrency = 64             # answers judged at the same time (each sends `samples` requests; lower it on 429s)
record_judge_s = 5.0         # expected time to judge one record: a batch of N needs ceil(N / concurrency) of them
poll_interval_s = 15
confirmations = 2            # unset: [networks.<name>] confirmations, else 0 on `local` and 3 elsewhere
backfill_s = 604800          # the first run looks back this far (at least the longest liveness)
settle = true                # settle expired and resolved assertions
vote = true                  # vote on disputed assertions (mock oracle push, or DVM commit/reveal)
ours_only = true             # only assertions whose callback recipient is our registry
dry_run = false              # decide and record, send nothing
metrics_port = 9464          # /metrics and /healthz on 127.0.0.1; 0 or unset: off
calibration = "calib.json"   # a map from `disputer eval --save-calibration`; relative to the config file
account = "dev:2"            # the disputer's signing account (an alias or dev:N)
auto_approve = true          # approve the bond currency for a dispute when the allowance is short
attempts = 3                 # evaluations of one assertion before an undecided verdict is final
offline_judge = "grounding-v2"  # the judge without an LLM: "grounding-v2" (reads claims) or "grounding-v1"
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from attest.config import Config, config_path, load_config, read_toml
from attest.errors import ConfigError

_AMOUNT = r"^[0-9]+(\.[0-9]+)?$"


class DisputerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    safety_margin_s: int = Field(default=600, ge=0, le=30 * 86400)
    max_bond_per_dispute: str | None = Field(default=None, pattern=_AMOUNT)
    total_budget: str | None = Field(default=None, pattern=_AMOUNT)
    samples: int = Field(default=3, ge=1, le=15)
    # With a judge that takes ~1 s, judging tops out near `concurrency` answers a second (bench/disputer.py); the
    # provider's rate limits are the other bound, and its 429s are retried with backoff.
    concurrency: int = Field(default=64, ge=1, le=64)
    # A batch of N records is judged `concurrency` at a time: one it cannot finish judging before its safety
    # margin is not started (policy.batch_out_of_time).
    record_judge_s: float = Field(default=5.0, gt=0, le=3600)
    poll_interval_s: float = Field(default=15.0, gt=0, le=3600)
    confirmations: int | None = Field(default=None, ge=0, le=1000)
    backfill_s: int = Field(default=7 * 86400, ge=0, le=365 * 86400)
    settle: bool = True
    vote: bool = True
    ours_only: bool = True
    dry_run: bool = False
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    calibration: str | None = None
    account: str | None = None
    auto_approve: bool = True
    attempts: int = Field(default=3, ge=1, le=100)
    offline_judge: Literal["grounding-v2", "grounding-v1"] = "grounding-v2"

    @field_validator("threshold", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # TOML writes `threshold = 1` as an integer; strict mode would refuse it as a float.
        return _int_as_float(value)

    @field_validator("poll_interval_s", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        return _int_as_float(value)

    def calibration_path(self, base: Path) -> Path | None:
        if self.calibration is None:
            return None
        path = Path(self.calibration).expanduser()
        return path if path.is_absolute() else base / path

    def amount(self, field: str) -> Decimal | None:
        text = getattr(self, field)
        return None if text is None else Decimal(text)


def _int_as_float(value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    try:
        return float(value)
    except OverflowError:
        # A ValueError becomes pydantic's ValidationError, so the loader reports it as a ConfigError.
        raise ValueError("the number is too large") from None


def effective_table(path: Path) -> dict[str, Any]:
    """The `[disputer]` table of the file at `path` as the daemon reads it, every key with its default filled in:
    what `attest config show` prints (registered as an `attest.config_tables` entry point)."""
    return load_disputer_config(path).model_dump(mode="json")


def load_disputer_config(path: Path | None = None, **overrides: Any) -> DisputerConfig:
    """The `[disputer]` table (defaults where absent), with command-line overrides that are not None."""
    path = path or config_path()
    table = read_toml(path).get("disputer", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: disputer must be a table ([disputer])")
    data = {**table, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return DisputerConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "disputer"
        if first["loc"] and overrides.get(str(first["loc"][0])) is not None:  # a flag's value, not the file's
            flag = "--" + str(first["loc"][0]).removesuffix("_s").replace("_", "-")
            raise ConfigError(f"{flag}: {first['msg']}") from None
        raise ConfigError(f"{path}: disputer.{where}: {first['msg']}; fix the [disputer] table") from None


def load_attest_config(path: Path | None = None) -> Config:
    """The whole file through attest's own loader (it carries the [disputer] table), for `connect` and IPFS."""
    return load_config(path or config_path())

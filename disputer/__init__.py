"""The disputer: watches llm-attest assertions, judges them and disputes wrong ones (built on `attest`).

Its modules, listed in `__all__`, are layered (pyproject.toml [tool.importlinter]): cli over daemon, over the
watcher, evaluator, judge choice and export hook, over the outbox actions and the offline judge, over the LLM
judge and telemetry, over the store and the pure cores (policy, calibration, config).
"""

__all__ = [
    "actions",
    "calibration",
    "cli",
    "config",
    "daemon",
    "evalcli",
    "evaluate",
    "export",
    "grounding",
    "judge",
    "judges",
    "metrics",
    "policy",
    "store",
    "telemetry",
    "view",
    "watcher",
]

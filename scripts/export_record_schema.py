"""Write attest/record/schema.json, attest/record/preference.schema.json and attest/batch/manifest.schema.json
from their models.

Run after changing attest/record/model.py or attest/batch/manifest.py: `python scripts/export_record_schema.py`.
tests/test_record.py and tests/test_batch_manifest.py fail when a file and its model disagree, so a stale export
cannot land.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attest.batch import manifest  # noqa: E402
from attest.record import model, preference  # noqa: E402


def main() -> None:
    for schema_file, render in (
        (model.SCHEMA_FILE, model.render_json_schema),
        (preference.PREFERENCE_SCHEMA_FILE, preference.render_preference_schema),
        (manifest.SCHEMA_FILE, manifest.render_json_schema),
    ):
        schema_file.write_text(render(), encoding="utf-8")
        print(f"wrote {schema_file.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Write attest/record/schema.json (and preference.schema.json) from the record models.

Run after changing attest/record/model.py: `python scripts/export_record_schema.py`. tests/test_record.py fails
when the file and the model disagree, so a stale export cannot land.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attest.record.model import SCHEMA_FILE, render_json_schema  # noqa: E402
from attest.record.preference import PREFERENCE_SCHEMA_FILE, render_preference_schema  # noqa: E402


def main() -> None:
    SCHEMA_FILE.write_text(render_json_schema(), encoding="utf-8")
    PREFERENCE_SCHEMA_FILE.write_text(render_preference_schema(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE.relative_to(ROOT)} and {PREFERENCE_SCHEMA_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

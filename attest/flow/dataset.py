"""The rankings as training data: `attest export --format dpo | tt-tsv | tt-json`.

`dpo`: one JSON line per decided preference, with the `prompt`, `chosen` and `rejected` columns TRL's
DPOTrainer reads (the retrieved context is in the prompt, as the model saw it); ties carry no preference and are
left out. `tt-tsv` / `tt-json`: the trust-and-teach shape (a prompt, its two responses best first, and whether
the ranker kept or switched the shown order, or called a tie), ties included. Every row names both answer
records and the preference by CID, the ranker, and the anchor transaction and receipt (empty while not anchored),
so each row can be checked with `attest verify PREFERENCE_CID --anchor RECEIPT`. Only a
ranker's current preference counts: one that was superseded is not exported.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from attest.flow.pairs import current_preferences, get_pair
from attest.ledger import Ledger
from attest.record.codec import decode_record
from attest.record.model import AttestationRecord
from attest.record.preference import decode_preference

PREFERENCE_FORMATS = ("dpo", "tt-tsv", "tt-json")
TT_COLUMNS = (
    "prompt", "response_0", "response_1", "rank", "query", "answer_1_cid", "answer_2_cid", "preference_cid",
    "ranker", "reason", "created_at", "anchor_tx", "anchor_receipt",
)  # fmt: skip


def prompt_text(record: AttestationRecord) -> str:
    """The question with the passages the answer was given, numbered as its citations number them."""
    passages = "\n\n".join(f"[{n}] ({c.source})\n{c.text}" for n, c in enumerate(record.context, 1))
    return f"Context:\n{passages}\n\nQuestion: {record.query}" if passages else f"Question: {record.query}"


def preference_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """One row per current preference: both answers (records decoded and signature-checked) and the choice."""
    out = []
    for p in current_preferences(ledger):
        preference = decode_preference(p.record)
        pair = get_pair(ledger, str(p.pair_id))
        one, two = decode_record(pair.first.record), decode_record(pair.second.record)
        out.append(
            {
                "prompt": prompt_text(one),
                "query": one.query,
                "answers": (one.answer, two.answer),
                "choice": preference.choice,
                "answer_1_cid": preference.pair[0].cid,
                "answer_2_cid": preference.pair[1].cid,
                "preference_cid": p.cid,
                "ranker": preference.ranker,
                "reason": preference.reason,
                "created_at": preference.created_at,
                "anchor_tx": p.anchor_tx or "",
                "anchor_receipt": p.anchor_receipt or "",
            }
        )
    return out


def render_preferences(data: list[dict[str, Any]], fmt: str) -> tuple[str, int]:
    """The text of the dataset and its number of rows."""
    if fmt == "dpo":
        lines = []
        for row in data:
            if row["choice"] == "tie":
                continue
            chosen = 0 if row["choice"] == "1" else 1
            lines.append(
                {
                    "prompt": row["prompt"],
                    "chosen": row["answers"][chosen],
                    "rejected": row["answers"][1 - chosen],
                    "chosen_cid": row[f"answer_{chosen + 1}_cid"],
                    "rejected_cid": row[f"answer_{2 - chosen}_cid"],
                    "preference_cid": row["preference_cid"],
                    "ranker": row["ranker"],
                    "anchor_tx": row["anchor_tx"],
                    "anchor_receipt": row["anchor_receipt"],
                }
            )
        return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), len(lines)
    tt = [_trust_and_teach(row) for row in data]
    if fmt == "tt-json":
        return json.dumps(tt, ensure_ascii=False, indent=2) + "\n", len(tt)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TT_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for row in tt:
        # As in `attest export --format tsv`: tabs and newlines inside a cell become spaces.
        writer.writerow({k: " ".join(v.split()) if isinstance(v, str) else v for k, v in row.items()})
    return buffer.getvalue(), len(tt)


def _trust_and_teach(row: dict[str, Any]) -> dict[str, Any]:
    # trust-and-teach shows two responses and the ranker confirms the order or switches it.
    switched = row["choice"] == "2"
    first, second = row["answers"][::-1] if switched else row["answers"]
    rank = "tie" if row["choice"] == "tie" else "switch" if switched else "confirm"
    return {
        "prompt": row["prompt"], "response_0": first, "response_1": second, "rank": rank, "query": row["query"],
        "answer_1_cid": row["answer_1_cid"], "answer_2_cid": row["answer_2_cid"],
        "preference_cid": row["preference_cid"], "ranker": row["ranker"], "reason": row["reason"],
        "created_at": row["created_at"], "anchor_tx": row["anchor_tx"], "anchor_receipt": row["anchor_receipt"],
    }  # fmt: skip

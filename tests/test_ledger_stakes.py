"""The asserter's bonds at stake and outcomes over time, for the dashboard: `Ledger.stakes` on real asks, a
dispute and a batch on the devnet, shaped by attest/ui/series.py and drawn by attest/ui/charts.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

from attest.ledger import Ledger
from attest.ui.charts import stacked_bar_chart, step_chart
from attest.ui.pages import at_stake, mine_view
from attest.ui.series import OUTCOME_KINDS, bucket_counts, outcome_events, stake_series
from tests.conftest import LocalChain
from tests.test_ask import QUESTION, ask_json, chain, dispute_and_resolve, ok

__all__ = ["chain"]  # the fixture, used by name
WRONG = "Replace the lamp with an electric bulb yearly."


def test_bonds_at_stake_and_outcomes_over_time(chain: LocalChain) -> None:
    honest = ask_json()
    wrong = ask_json("--answer", WRONG)
    for _ in range(2):
        ok("ask", QUESTION, "--batch", "--json")
    assert "batch #1: 2 records" in ok("batch", "flush")
    ask_json("--no-assert")  # pinned only: no bond
    with Ledger() as ledger:
        open_stakes = ledger.stakes()
    assert [s.ended_at for s in open_stakes] == [None] * 3  # one bond per assertion: the batch's counted once
    assert [s.assertion_id for s in open_stakes[:2]] == [honest["assertion_id"], wrong["assertion_id"]]
    assert open_stakes[2].batch_id == 1 and all(s.bond == 200 * 10**6 for s in open_stakes)
    assert {(s.decimals, s.symbol, s.network) for s in open_stakes} == {(6, "USDC", "local")}
    # The dashboard's "Bonds at stake" sums the same stakes as its chart: the batch's bond too, in USDC.
    assert mine_view("local", None, lambda _: None).at_stake == {"USDC": "600"}

    # A batch planned before plans kept the currency's decimals and symbol: the single asks in that currency on
    # that network say them, so its bond is not drawn as a separate series in base units.
    with Ledger() as ledger, ledger.transaction() as db:
        db.execute("UPDATE batches SET plan = json_remove(plan, '$.bond_decimals', '$.bond_symbol')")
    with Ledger() as ledger:
        assert [(s.decimals, s.symbol) for s in ledger.stakes()] == [(6, "USDC")] * 3
    alone = replace(open_stakes[2], decimals=None, symbol=None)  # and without a single ask in its currency
    assert at_stake([alone]) == {f"{alone.currency} (base units)": str(200 * 10**6)}

    dispute_and_resolve(chain, str(wrong["assertion_id"]), 0)
    chain.advance(7300)
    ok("settle", "--all")
    with Ledger() as ledger:
        stakes = ledger.stakes()
        assert ledger.stakes(network="elsewhere") == []
    assert [(s.outcome, s.disputed_at is not None) for s in stakes] == [
        ("attested", False), ("rejected", True), ("attested", False),
    ]  # fmt: skip
    assert all(s.ended_at is not None and s.ended_at >= s.asserted_at for s in stakes)

    now = datetime.now(UTC)
    (series,) = stake_series(stakes, until=now)
    assert series.label == "USDC on local"
    values = [v for _, v in series.points]
    assert max(values) == 600.0 and values[-1] == 0.0 and series.points[-1][0] == now  # all three settled
    assert values == sorted(values[: values.index(600.0) + 1]) + values[values.index(600.0) + 1 :]
    root = ET.fromstring(step_chart([series], title="Bonds at stake", y_label="USDC"))
    assert "USDC on local" in "".join(root.itertext())

    buckets = bucket_counts(outcome_events(stakes), kinds=OUTCOME_KINDS)
    assert {k: sum(v) for k, v in buckets.counts.items()} == {"asserted": 3, "disputed": 1, "attested": 2,
                                                              "rejected": 1}  # fmt: skip
    ET.fromstring(stacked_bar_chart(buckets, title="Outcomes"))

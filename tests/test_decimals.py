"""Real token decimals: the whole flow (ask → dispute → settle) on a devnet whose bond token has 6 decimals (USDC on
public chains) and on one with 18. The bond is given with a fraction, the disputer's per-dispute cap is exactly that
bond (one smallest unit off in either direction would change the decision), and the export shows it in units."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from attest.accounts import dev_account
from attest.chain.oov3 import OptimisticOracleV3
from attest.cli import cli
from attest.devnet import Devnet
from attest.errors import DevnetError
from attest.flow.token import Token
from tests.support.ports import free_port

KB_DOCS = Path(__file__).parent / "fixtures" / "kb" / "good"
QUESTION = "How often should the wick be trimmed?"
WRONG = "The wick never needs trimming; replace the whole lamp once a year."
BOND = "250.5"
DISPUTER = str(Path(sys.executable).with_name("disputer"))


def ok(*args: str) -> str:
    result = CliRunner(mix_stderr=False).invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


@pytest.fixture(params=[6, 18], ids=["6-decimals", "18-decimals"])
def home(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("ATTEST_HOME", str(root))
    monkeypatch.delenv("ATTEST_CONFIG", raising=False)
    (root / "config.toml").write_text(
        '[llm]\nprovider = "extractive"\n\n'  # the disputer judges offline (grounding-v1)
        "[disputer]\nsamples = 1\nattempts = 1\nbackfill_s = 86400\n"
        f'max_bond_per_dispute = "{BOND}"\ntotal_budget = "1000"\n'
    )
    shown = ok("devnet", "up", "--port", str(free_port()), "--bond-decimals", str(request.param))
    assert f"bond token:  USDC with {request.param} decimals" in shown
    yield root
    Devnet(root).down()


def test_ask_dispute_settle_in_the_currency_s_own_decimals(home: Path) -> None:
    devnet = Devnet(home)
    deployment = devnet.deployment()
    assert deployment is not None
    w3 = devnet.web3()
    token = Token(w3, deployment.currency)
    decimals = token.decimals
    bond = int(Decimal(BOND).scaleb(decimals))

    ok("kb", "add", str(KB_DOCS))
    asked = json.loads(ok("ask", QUESTION, "--answer", WRONG, "--bond", BOND, "--json"))
    assert asked["bond"] == str(bond) and asked["bond_display"] == f"{BOND} USDC"
    assertion_id = bytes.fromhex(str(asked["assertion_id"])[2:])
    oov3 = OptimisticOracleV3(w3, deployment.oov3)
    assert oov3.get_assertion(assertion_id).bond == bond

    # The disputer reads its cap in the same decimals: a bond of exactly the cap is disputed, the price pushed to
    # the mock oracle (the answer is false) and the assertion settled, over a few passes.
    env = {**os.environ, "ATTEST_HOME": str(home)}
    for _ in range(4):
        passed = subprocess.run(
            [DISPUTER, "run", "--once"], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        assert passed.returncode == 0, passed.stderr[-3000:]
        if oov3.get_assertion(assertion_id).settled:
            break
    chain = oov3.get_assertion(assertion_id)
    assert chain.disputer == dev_account(2).address, passed.stderr[-3000:]
    assert chain.settled and chain.settlement_resolution is False

    ok("settle", str(asked["id"]))
    status = json.loads(ok("status", str(asked["id"]), "--json"))
    assert (status["status"], status["outcome"]) == ("settled", "rejected")
    (row,) = [json.loads(line) for line in ok("export").splitlines()]
    assert (row["bond"], row["bond_amount"], row["bond_symbol"]) == (str(bond), BOND, "USDC")

    # The devnet keeps its token: asking for other decimals is refused, not silently ignored.
    other = 18 if decimals == 6 else 6
    with pytest.raises(DevnetError, match=f"has {decimals} decimals, not {other}; `attest devnet reset --yes`"):
        devnet.up(free_port(), bond_decimals=other)


def test_a_budget_finer_than_the_currency_is_refused() -> None:
    from attest.errors import BondError
    from attest.units import to_units

    assert to_units(Decimal("250.5"), 6, "cap") == 250_500_000
    assert to_units(Decimal("0"), 18, "cap") == 0
    with pytest.raises(BondError, match=r"\[disputer\] total_budget = 0.0000001 has more than the currency's 6"):
        to_units(Decimal("0.0000001"), 6, "[disputer] total_budget")

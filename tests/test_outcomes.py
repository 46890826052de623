"""Outcomes as the chain decides them: what `settle`, `list`, `status`, `export` and `verify` say comes from our
AttestationRegistry (`attestationOf`, `isAttested`), not from OOv3's settlement alone.

The case that tells them apart: an assertion whose liveness is below the registry's minimum. OOv3 resolves it
true and returns the bond; the registry resolves it Rejected. `ask` refuses such a liveness now, so the test
asserts it the way the release before that refusal did (the check switched off), as an old ledger holds it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from attest.chain.registry import attestation_of, is_attested, read_registry
from attest.cli import cli
from attest.connect import ChainContext
from attest.ledger import Ledger
from tests.conftest import LocalChain
from tests.test_ask import KB_DOCS, QUESTION, oov3


def run(*args: str) -> Result:
    return CliRunner(mix_stderr=False).invoke(cli, list(args), catch_exceptions=False)


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def test_an_assertion_the_registry_rejects_is_rejected_everywhere(
    local_chain: LocalChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = local_chain
    minimum = read_registry(chain.w3, chain.deployment.registry).min_liveness
    assert minimum == 60
    ok("kb", "add", str(KB_DOCS))
    with monkeypatch.context() as unchecked:
        unchecked.setattr("attest.flow.ask.check_registry", lambda ctx, liveness: ChainContext.require_registry(ctx))
        asked = json.loads(ok("ask", QUESTION, "--liveness", "30", "--json"))
    assertion_id = str(asked["assertion_id"])
    raw_id = bytes.fromhex(assertion_id[2:])

    # verify fails while the assertion is still open: the registry will not count it.
    verified = run("verify", assertion_id)
    assert verified.exit_code == 1, verified.output
    assert "FAIL  callback" in verified.stdout
    assert "liveness of 30 s is below the registry's minimum of 60 s" in verified.stdout
    assert "will resolve it Rejected" in verified.stdout

    shown = ok("status", assertion_id)
    assert "registry   pending - its liveness of 30 s is below the registry's minimum of 60 s" in shown
    assert "(the registry will resolve it Rejected)" in shown

    chain.advance(40)
    settled = ok("settle", "--all")
    assert "settled - rejected: its liveness of 30 s is below the registry's minimum of 60 s" in settled, settled
    # OOv3 resolved it true (the bond came back); the registry says Rejected, and the digest is not attested.
    assert oov3(chain).get_assertion(raw_id).settlement_resolution is True
    assert attestation_of(chain.w3, chain.deployment.registry, raw_id).status == "rejected"
    assert not is_attested(chain.w3, chain.deployment.registry, bytes.fromhex(str(asked["digest"])[2:]))

    listed = json.loads(ok("list", "--json"))
    assert [(row["status"], row["outcome"]) for row in listed] == [("settled", "rejected")]
    assert "rejected" in ok("list") and "attested" not in ok("list")
    shown = json.loads(ok("status", assertion_id, "--json"))
    assert shown["outcome"] == "rejected" and shown["chain"]["settlement_resolution"] is True
    assert shown["registry"]["status"] == "rejected" and "below the registry's minimum" in shown["registry"]["reason"]
    assert "registry   rejected - its liveness of 30 s" in ok("status", assertion_id)
    exported = [json.loads(line) for line in ok("export").splitlines()]
    assert [row["outcome"] for row in exported] == ["rejected"]
    after = run("verify", assertion_id)
    assert after.exit_code == 1 and "does not count it (rejected)" in after.stdout

    # A row an older release settled as "attested" from OOv3's resolution is corrected from the registry.
    with Ledger() as ledger:
        a = ledger.find(assertion_id)
        ledger.update(a.id, "settled", {"outcome": "attested"}, outcome="attested")
    assert "already settled - rejected: its liveness" in ok("settle", assertion_id)
    with Ledger() as ledger:
        assert ledger.find(assertion_id).outcome == "rejected"
        assert ledger.steps(a.id)[-1].detail["was"] == "attested"
    assert json.loads(ok("list", "--json"))[0]["outcome"] == "rejected"

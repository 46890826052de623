"""The dashboard in a real browser: Debian's headless chromium driven by Playwright, on a devnet holding a settled,
an honest (open), a disputed and a batched assertion. It clicks list → assertion → record → cited passage, sees a
new assertion appear on the open list without a reload, and saves screenshots (ATTEST_UI_SCREENSHOTS names a
folder to keep them in; docs/ui-list.png and docs/ui-assertion.png came from here)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

from attest.ui.app import create_app
from tests.conftest import LocalChain
from tests.support.ports import free_port
from tests.test_ask import KB_DOCS, QUESTION, dispute_and_resolve, ok

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


def ask(*extra: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(ok("ask", QUESTION, "--json", *extra))
    return out


@pytest.fixture
def devnet_with_assertions(local_chain: LocalChain) -> dict[str, str]:
    """A settled, an open, a disputed and a batched assertion, made by this home's `attest` (so all are ours)."""
    ok("kb", "add", str(KB_DOCS))
    settled = str(ask()["assertion_id"])
    local_chain.advance(7300)
    assert "settled - attested" in ok("settle", "--all")
    honest = str(ask()["assertion_id"])
    disputed = str(ask()["assertion_id"])
    dispute_and_resolve(local_chain, disputed, 0)
    ask("--batch")
    ask("--batch")
    assert "batch #1: 2 records" in ok("batch", "flush")
    return {"settled": settled, "honest": honest, "disputed": disputed}


@pytest.fixture
def dashboard(devnet_with_assertions: dict[str, str]) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app("local"), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            yield context.new_page()
        finally:
            context.close()


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ATTEST_UI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_click_through_and_see_a_new_assertion_arrive(
    dashboard: str, page: Page, devnet_with_assertions: dict[str, str], tmp_path: Path
) -> None:
    out = shots(tmp_path)
    page.goto(dashboard + "/")
    rows = page.locator("#assertions tbody tr")
    expect(rows).to_have_count(4, timeout=20_000)  # the scanner has read the chain
    page.goto(dashboard + "/")  # the list as a visitor first sees it
    expect(page.get_by_role("heading", name="Assertions")).to_be_visible()
    for status in ("settled (true)", "asserted", "disputed"):
        expect(page.locator("#assertions").get_by_text(status, exact=True).first).to_be_visible()
    expect(page.locator("#assertions").get_by_text("batch", exact=True)).to_have_count(1)
    page.screenshot(path=str(out / "ui-list.png"), full_page=True)

    # A new assertion appears on the open page without a reload (the page's script polls /live).
    ask()
    expect(page.locator("#assertions tbody tr.fresh")).to_have_count(1, timeout=20_000)
    expect(page.locator("#live-status")).to_have_text("1 new assertion")

    # list → assertion
    honest = devnet_with_assertions["honest"]
    page.locator(f'a[href="/assertion/{honest}"]').click()
    expect(page.get_by_role("heading", name="The claim, as the Oracle UI shows it")).to_be_visible()
    expect(page.locator(".claim h3")).to_contain_text("llm-attest: correct and faithful answer")
    expect(page.locator("table.checks .status-fail")).to_have_count(0)
    expect(page.locator("table.checks .status-pass").first).to_be_visible()
    expect(page.locator("ol.timeline")).to_contain_text("asserted in block")
    page.screenshot(path=str(out / "ui-assertion.png"), full_page=True)

    # assertion → record → cited passage
    page.get_by_role("link", name="bafk", exact=False).first.click()
    expect(page.get_by_role("heading", name="Query")).to_be_visible()
    expect(page.locator("blockquote.query")).to_have_text(QUESTION)
    expect(page.get_by_role("heading", name="The model, as the asserter states it")).to_be_visible()
    page.get_by_role("link", name="cited passage 1").click()
    expect(page.get_by_role("heading", name="Passage [1]", exact=False)).to_be_visible()
    expect(page.locator("table.checks")).to_contain_text("the text is in the document")
    page.screenshot(path=str(out / "ui-passage.png"), full_page=True)

    # The disputed one shows its dispute on the timeline; the batch lists its records with their proofs.
    page.goto(dashboard + "/assertion/" + devnet_with_assertions["disputed"])
    expect(page.locator("ol.timeline")).to_contain_text("disputed in block")
    expect(page.locator("ol.timeline")).to_contain_text("the oracle has answered the dispute")
    page.goto(dashboard + "/?batch=1")
    page.locator("#assertions tbody tr a").first.click()
    expect(page.get_by_role("heading", name="The batch: 2 records")).to_be_visible()
    expect(page.locator("details summary").first).to_contain_text("hashes")
    page.goto(dashboard + "/mine")
    expect(page.get_by_text("Bonds at stake:")).to_contain_text("USDC")
    charts = page.locator(".charts svg")  # bonds at stake and outcomes over time, drawn on the server
    expect(charts).to_have_count(2)
    expect(charts.first).to_contain_text("Bonds at stake")
    page.screenshot(path=str(out / "ui-mine.png"), full_page=True)
    saved = sorted(p.name for p in out.glob("*.png"))
    assert saved == ["ui-assertion.png", "ui-list.png", "ui-mine.png", "ui-passage.png"]

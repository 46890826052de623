"""`attest ui`: the dashboard, an ASGI app (FastAPI + Jinja2) rendering every page on the server.

Read-only unless built with `allow_actions`: then a settle form posts to /actions/settle/N, accepted only with the
page's CSRF token and an Origin (or Referer) of this server, and runs `attest settle`'s own flow (the ledger and
its outbox: the same checks, never a second way to send). Expected failures (an unknown id, a record that does not
resolve, a chain that is down) render as a page saying what is wrong, with the matching HTTP status.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from web3 import Web3

from attest.config import Config, load_config
from attest.connect import ChainContext, connect
from attest.errors import AttestError, ChainError, LedgerError, NotFound, StoreError, VerifyError
from attest.ipfs.local import LocalStore
from attest.ipfs.remotes import Remotes
from attest.paths import attest_home
from attest.ui import pages
from attest.ui.disputer_view import disputer_view
from attest.ui.index import STATUSES, AssertionIndex, Filters
from attest.ui.scan import our_assertions, sync

HERE = Path(__file__).resolve().parent
POLL_S = 1.0  # how often the scanner looks for new blocks


class UiError(AttestError):
    """A page that cannot be shown, with the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Dashboard:
    """The app's state: the network, the index (read under a lock; the scanner writes on its own connection)."""

    network: str
    config: Config
    allow_actions: bool
    index_path: Path
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    chain_error: str | None = None
    _ctx: ChainContext | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _index: AssertionIndex | None = None

    @contextmanager
    def index(self) -> Iterator[AssertionIndex]:
        with self._lock:
            if self._index is None:
                self._index = AssertionIndex(self.index_path)
            yield self._index

    def ctx(self) -> ChainContext:
        """The chain, connected on first use and again after it was down; ChainError when it cannot be reached."""
        if self._ctx is None:
            try:
                self._ctx = connect(self.network, config=self.config, start_devnet=False)
                self._ctx.w3.eth.block_number  # noqa: B018 (a node that answers nothing is down)
            except AttestError as err:
                self._ctx = None
                raise ChainError(f"the {self.network} chain cannot be reached: {err}") from None
            except Exception as err:  # any transport failure means the same thing here
                self._ctx = None
                raise ChainError(f"the {self.network} chain cannot be reached ({type(err).__name__})") from None
        return self._ctx

    def chain_now(self) -> int | None:
        try:
            return int(self.ctx().w3.eth.get_block("latest")["timestamp"])
        except Exception:
            self._ctx = None
            return None

    def readers(self) -> tuple[Any, ...]:
        ipfs = self.config.ipfs_for(self.network)
        return (LocalStore(), *Remotes.from_config(ipfs).readers)

    @property
    def timeout_s(self) -> float:
        return float(self.config.ipfs_for(self.network).timeout_s)

    def scan_once(self, index: AssertionIndex) -> None:
        try:
            sync(index, self.ctx(), our_assertions(self.network))
            self.chain_error = None
        except AttestError as err:
            self._ctx, self.chain_error = None, str(err)
        except Exception as err:  # the node went away mid-scan: say so on the pages, try again next time
            self._ctx, self.chain_error = None, f"the {self.network} chain stopped answering ({type(err).__name__})"

    def scanner(self) -> None:
        index = AssertionIndex(self.index_path)
        try:
            while not self._stop.is_set():
                self.scan_once(index)
                self._stop.wait(POLL_S)
        finally:
            index.close()


def create_app(
    network: str | None = None, *, allow_actions: bool = False, config: Config | None = None, scan: bool = True
) -> FastAPI:
    """The dashboard for `network`. `scan=False` leaves the index as it is (tests and benchmarks fill it)."""
    config = config or load_config()
    name = config.resolve_network(network or config.defaults.network).name
    state = Dashboard(name, config, allow_actions, attest_home() / "ui" / f"index-{name}.sqlite")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(target=state.scanner, name="attest-ui-scanner", daemon=True) if scan else None
        if thread is not None:
            thread.start()
        yield
        state._stop.set()
        if thread is not None:
            thread.join(timeout=10)

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = state
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(network=name, allow_actions=allow_actions, csrf=state.csrf, utc=pages.utc)

    def html(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("chain_error", state.chain_error)
        return templates.TemplateResponse(request, template, values, status_code=status)

    @app.exception_handler(AttestError)
    async def expected(request: Request, err: AttestError) -> HTMLResponse:
        return html(request, "error.html", _status(err), message=str(err), kind=type(err).__name__)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> HTMLResponse:
        message = "there is no such page here" if err.status_code == 404 else str(err.detail)
        return html(request, "error.html", err.status_code, message=message, kind="HTTP error")

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception) -> HTMLResponse:
        # A bug: the page says so without a stack trace (the server's log has it).
        message = f"the dashboard failed ({type(err).__name__}); this is a bug, please report it"
        return html(request, "error.html", 500, message=message, kind="internal error")

    @app.get("/", response_class=HTMLResponse)
    def assertions(request: Request) -> HTMLResponse:
        filters = _filters(request)
        before = _int(request.query_params.get("before"), "before")
        started = time.perf_counter()
        with state.index() as index:
            rows = index.page(filters, before=before)
            total = index.count(filters)
        more = None
        if len(rows) == pages.PAGE_SIZE:
            more = "?" + urlencode({**filters.query(), "before": rows[-1].position})
        return html(
            request, "list.html", rows=rows, filters=filters, statuses=STATUSES, total=total, more=more,
            first_page=before is None, newest=rows[0].position if rows else 0, live_query=urlencode(filters.query()),
            server_ms=(time.perf_counter() - started) * 1000,
        )  # fmt: skip

    @app.get("/live")
    def live(request: Request) -> JSONResponse:
        """New rows since `after` for the list page's script: rendered on the server, as the page's own rows."""
        filters = _filters(request)
        after = _int(request.query_params.get("after"), "after") or 0
        with state.index() as index:
            rows = index.newer(filters, after)
        body = templates.get_template("rows.html").render(rows=rows)
        newest = rows[0].position if rows else after
        return JSONResponse({"html": body, "count": len(rows), "newest": newest, "chain_error": state.chain_error})

    @app.get("/assertion/{assertion_id}", response_class=HTMLResponse)
    def assertion(request: Request, assertion_id: str) -> HTMLResponse:
        row = _row(state, assertion_id)
        ctx = _ctx_or_none(state)
        page = pages.assertion_page(row, ctx, state.readers(), state.timeout_s, state.chain_now())
        view = disputer_view()
        verdicts = [] if view is None else view.verdicts(row.assertion_id)
        failed = [c for c in page.checks if c.ok is False]
        status = 503 if ctx is None else 200  # what the index holds is shown, but nothing could be checked
        disputable = allow_actions and row.status == "asserted" and view is not None
        message = request.query_params.get("m")
        return html(
            request, "assertion.html", status, page=page, verdicts=verdicts, failed=failed, disputable=disputable,
            message=message,
        )  # fmt: skip

    @app.get("/record/{cid}", response_class=HTMLResponse)
    def record(request: Request, cid: str) -> HTMLResponse:
        rec, _ = pages.fetch_record(cid, state.readers(), state.timeout_s)
        ctx = _ctx_or_none(state)
        checks = pages.record_checks(cid, ctx, state.readers(), state.timeout_s)
        with state.index() as index:
            asserted = index.of_record(cid)
        answer = pages.answer_html(rec, cid)
        return html(request, "record.html", cid=cid, record=rec, answer=answer, checks=checks, asserted=asserted)

    @app.get("/record/{cid}/context/{n}", response_class=HTMLResponse)
    def chunk(request: Request, cid: str, n: int) -> HTMLResponse:
        rec, _ = pages.fetch_record(cid, state.readers(), state.timeout_s)
        if not 1 <= n <= len(rec.context):
            raise UiError(f"the record {cid} cites {len(rec.context)} passage(s); there is no passage {n}", 404)
        checks = pages.chunk_checks(rec, n, pages.fetcher(state.readers(), state.timeout_s))
        return html(request, "chunk.html", cid=cid, n=n, chunk=rec.context[n - 1], record=rec, checks=checks)

    @app.get("/kb", response_class=HTMLResponse)
    def kb(request: Request) -> HTMLResponse:
        return html(request, "kb.html", kb=pages.kb_view(lambda: _ctx_or_none(state)))

    @app.get("/disputer", response_class=HTMLResponse)
    def disputer(request: Request) -> HTMLResponse:
        view = disputer_view()
        if view is None:
            return html(request, "disputer.html", installed=False)
        run = view.latest_eval()
        chart = pages.decisions_chart(view, config.resolve_network(name).chain_id)
        eval_charts = () if run is None else pages.eval_charts(run)
        return html(request, "disputer.html", installed=True, chart=chart, run=run, eval_charts=eval_charts)

    @app.get("/mine", response_class=HTMLResponse)
    def mine(request: Request) -> HTMLResponse:
        now = state.chain_now()
        with state.index() as index:
            view = pages.mine_view(name, now, index.get)
        return html(request, "mine.html", mine=view, message=request.query_params.get("m"))

    @app.post("/actions/settle/{number}")
    def settle(request: Request, number: int, csrf: str = Form("")) -> Response:
        _require_action(state, request, csrf)
        from attest.flow.lifecycle import settle as settle_flow

        (outcome,) = settle_flow([str(number)], config=config)
        told = f"#{number}: {outcome.action}" + (f" ({outcome.detail})" if outcome.detail else "")
        return RedirectResponse("/mine?" + urlencode({"m": told}), status_code=303)

    @app.post("/actions/dispute/{assertion_id}")
    def dispute(request: Request, assertion_id: str, csrf: str = Form("")) -> Response:
        _require_action(state, request, csrf)
        row = _row(state, assertion_id)
        view = disputer_view()
        if view is None:
            raise UiError("no disputer is installed beside attest here, so the dashboard cannot dispute", 404)
        told = view.dispute(row.assertion_id, name)
        return RedirectResponse(f"/assertion/{row.assertion_id}?" + urlencode({"m": told}), status_code=303)

    return app


def _status(err: AttestError) -> int:
    if isinstance(err, UiError):
        return err.status
    if isinstance(err, NotFound | LedgerError):
        return 404
    if isinstance(err, ChainError):
        return 503
    if isinstance(err, StoreError):
        return 502
    return 400 if isinstance(err, VerifyError) else 422


def _int(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    assert value is not None
    if not value.isdigit():
        raise UiError(f"{what} must be a whole number, not {value[:40]!r}")
    return int(value)


def _filters(request: Request) -> Filters:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise UiError(f"status {status[:40]!r} is not one of {', '.join(STATUSES)}")
    asserter = (q.get("asserter") or "").strip() or None
    if asserter is not None:
        if not Web3.is_address(asserter):
            raise UiError(f"asserter {asserter[:60]!r} is not an address (0x and 40 hex digits)")
        asserter = Web3.to_checksum_address(asserter)
    flag: Callable[[str], bool] = lambda key: q.get(key) in ("1", "on", "true")  # noqa: E731
    return Filters(ours=flag("ours"), status=status, disputed=flag("disputed"), batch=flag("batch"), asserter=asserter)


def _row(state: Dashboard, assertion_id: str) -> Any:
    if not pages.ASSERTION_ID.fullmatch(assertion_id):
        raise UiError(f"{assertion_id[:80]!r} is not an assertion id (0x and 64 hex digits)", 400)
    with state.index() as index:
        row = index.get(assertion_id)
    if row is None:
        raise UiError(
            f"there is no assertion {assertion_id} on {state.network} (as far as the index has scanned); check the id "
            "and the network the dashboard watches (--network)",
            404,
        )
    return row


def _ctx_or_none(state: Dashboard) -> ChainContext | None:
    try:
        return state.ctx()
    except ChainError as err:
        state.chain_error = str(err)
        return None


def _require_action(state: Dashboard, request: Request, token: str) -> None:
    """Actions only when allowed, from this server's own pages: the form's token, and the browser's Origin (or,
    without one, Referer) naming this host, so another site cannot make a visitor's browser post here."""
    if not state.allow_actions:
        raise UiError("actions are off; start the dashboard with `attest ui --allow-actions` to settle from it", 403)
    if not hmac.compare_digest(token.encode(), state.csrf.encode()):
        raise UiError("the form's token is missing or stale; reload the page and submit again", 403)
    origin = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host", "")
    if origin is None or urlsplit(origin).netloc != host:
        raise UiError("this form was not posted from this dashboard's own page (Origin check); use the page", 403)

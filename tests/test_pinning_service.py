"""PinningService against a local server implementing the IPFS Pinning Service API (tests/support/ipfs_services.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from attest.errors import NotFound, StoreError
from attest.ipfs.cid import CID
from attest.ipfs.pinning import PinningService, PinStatus
from attest.ipfs.store import ContentStore, PinResult
from tests.support.ipfs_services import FakePinningService

TOKEN = "psa-test-token-7d41c0e9b2"  # distinctive, so any leak of it is found by a substring search
HELLO_V0 = CID.parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")  # b"hello world\n", `ipfs add`
HELLO_V1 = CID.parse("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")  # the same, --cid-version=1
OTHER = CID.for_block(b"other", codec=0x55, version=1)


@pytest.fixture
def fake() -> Iterator[FakePinningService]:
    with FakePinningService(TOKEN) as server:
        yield server


def client(
    fake: FakePinningService,
    token: str = TOKEN,
    *,
    timeout_s: float = 5.0,
    poll_interval_s: float = 0.01,
    max_retries: int = 3,
) -> PinningService:
    return PinningService(
        fake.url, token, timeout_s=timeout_s, poll_interval_s=poll_interval_s, max_retries=max_retries, backoff_s=0.01
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_gets(fake: FakePinningService) -> int:
    return fake.count("GET", "/psa/pins/")


def assert_no_token(err: BaseException, token: str = TOKEN) -> None:
    """Nowhere in the exception or anything chained to it (what a traceback prints besides source lines)."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    shown = [text for e in chain for text in (str(e), repr(e), *map(repr, e.args))]
    assert not [text for text in shown if token in text]


# -- pin, poll, list ---------------------------------------------------------------------------------------
def test_pin_polls_until_pinned(fake: FakePinningService) -> None:
    service: ContentStore = client(fake)  # also a static check that PinningService fits the protocol

    result = service.pin(HELLO_V1)

    assert result == PinResult(
        f"pinning 127.0.0.1:{fake.port}", str(HELLO_V1), ok=True, status="pinned", detail=result.detail
    )
    (requestid,) = fake.pins
    assert result.detail == f"request {requestid}"
    assert fake.count("POST") == 1
    assert pin_gets(fake) == 2  # queued → pinning → pinned, one GET per step


def test_pin_again_reuses_the_live_request(fake: FakePinningService) -> None:
    service = client(fake)
    first = service.pin(HELLO_V1)
    second = service.pin(HELLO_V1)

    assert first.detail == second.detail
    assert second.status == "pinned"
    assert fake.count("POST") == 1
    assert len(fake.pins) == 1


def test_failed_pin_is_reported_and_a_new_request_replaces_it(fake: FakePinningService) -> None:
    fake.knobs.fail_cids = {str(HELLO_V1)}
    service = client(fake)

    result = service.pin(HELLO_V1)

    assert (result.ok, result.status) == (False, "failed")
    assert "no providers found" in result.detail  # the service's reason, from PinStatus.info
    service.pin(HELLO_V1)
    assert fake.count("POST") == 2  # a failed request is not "live": pinning again asks anew


def test_pin_still_in_progress_when_the_wait_ends_is_accepted_not_final(fake: FakePinningService) -> None:
    fake.knobs.steps_to_pinned = 10**6
    service = client(fake, timeout_s=0.6, poll_interval_s=0.05)

    started = time.monotonic()
    result = service.pin(HELLO_V1)
    elapsed = time.monotonic() - started

    assert (result.ok, result.status) == (True, "pinning")
    assert "still pinning after 0.6s" in result.detail
    assert 0.4 < elapsed < 0.6 + 0.5
    assert pin_gets(fake) >= 5


def test_list_pins_every_status_newest_first_with_filters(fake: FakePinningService) -> None:
    service = client(fake)
    service.put(b"hello world\n", cid_version=1)
    service.put(b"hello world\n", cid_version=0)
    service.put(b"other")  # one chunk under CIDv1: its raw block's CID
    pinned = service.pin(HELLO_V0)
    assert pinned.status == "pinned"

    everything = service.list_pins()  # the spec's server default would list only "pinned"
    assert [p.cid for p in everything] == [str(OTHER), str(HELLO_V0), str(HELLO_V1)]
    assert [p.status for p in everything] == ["queued", "pinned", "queued"]
    assert [p.cid for p in service.list_pins("pinned")] == [str(HELLO_V0)]
    assert [p.cid for p in service.list_pins(["queued", "failed"])] == [str(OTHER), str(HELLO_V1)]
    assert len(service.list_pins(limit=2)) == 2
    assert [p.cid for p in service.list_pins(cid=HELLO_V1)] == [str(HELLO_V1)]

    one = service.status(everything[0].requestid)
    assert isinstance(one, PinStatus)
    assert one.status == "pinning"  # this GET advanced it
    assert one.delegates == (FakePinningService.DELEGATE,)
    assert isinstance(one.created, datetime) and one.created.utcoffset() is not None


def test_list_arguments_are_checked_before_any_request(fake: FakePinningService) -> None:
    service = client(fake)
    with pytest.raises(ValueError, match="status must be among"):
        service.list_pins("done")
    with pytest.raises(ValueError, match="between 1 and 1000"):
        service.list_pins(limit=1001)
    assert fake.requests == []


def test_has_means_pinned(fake: FakePinningService) -> None:
    service = client(fake)
    assert not service.has(HELLO_V1)
    service.put(b"hello world\n")
    assert not service.has(HELLO_V1)  # queued is not pinned
    service.pin(HELLO_V1)
    assert service.has(HELLO_V1)
    assert not service.has(HELLO_V0)


@pytest.mark.parametrize(("version", "expected"), [(0, HELLO_V0), (1, HELLO_V1)])
def test_put_pins_the_locally_computed_cid_without_uploading(
    fake: FakePinningService, version: int, expected: CID
) -> None:
    origins = ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"]
    service = PinningService(fake.url, TOKEN, timeout_s=5, origins=origins)

    assert service.put(b"hello world\n", cid_version=version) == expected

    (pin,) = fake.pins.values()
    assert (pin.cid, pin.origins) == (str(expected), origins)
    assert pin_gets(fake) == 0  # put does not wait for the pin


def test_replace_and_remove(fake: FakePinningService) -> None:
    service = client(fake)
    old = service.list_pins(cid=service.put(b"hello world\n"))[0]

    new = service.replace(old.requestid, HELLO_V0)
    assert (new.cid, new.status) == (str(HELLO_V0), "queued")
    assert new.requestid != old.requestid
    with pytest.raises(NotFound, match=f"pin request {old.requestid} was not found"):
        service.status(old.requestid)

    service.remove(new.requestid)
    assert service.list_pins() == []
    with pytest.raises(NotFound):
        service.remove(new.requestid)


def test_service_side_rejection_is_quoted(fake: FakePinningService) -> None:
    service = client(fake)
    requestid = service.list_pins(cid=service.put(b"hello world\n"))[0].requestid
    with pytest.raises(StoreError, match=r"HTTP 400\) \(BAD_REQUEST: 'not-a-cid' is not a CID\)"):
        service.replace(requestid, "not-a-cid")


def test_get_is_refused(fake: FakePinningService) -> None:
    with pytest.raises(StoreError, match="does not serve content; read through a gateway or node"):
        client(fake).get(HELLO_V1)
    assert fake.requests == []


# -- the token ----------------------------------------------------------------------------------------------
def test_rejected_token_is_named_by_its_variable_never_shown(fake: FakePinningService) -> None:
    wrong = "psa-wrong-token-0f9e8d7c6b"
    service = PinningService(fake.url, wrong, timeout_s=5, token_env="PINATA_TOKEN")

    for call in (lambda: service.pin(HELLO_V1), lambda: service.list_pins(), lambda: service.has(HELLO_V1)):
        with pytest.raises(StoreError, match=r"rejected the token \(HTTP 401\); check PINATA_TOKEN") as caught:
            call()
        assert_no_token(caught.value, wrong)
    # The fake echoes the token it was given in its error details, as a careless service might.
    assert wrong not in repr(service)
    assert fake.count("POST") == 0


def test_default_variable_name_and_the_sent_header(fake: FakePinningService) -> None:
    with pytest.raises(StoreError, match="check ATTEST_PINNING_TOKEN") as caught:
        client(fake, token="nope").list_pins()
    assert_no_token(caught.value, "nope")

    client(fake).list_pins()
    assert fake.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("token", ["", "   ", "line\nbreak-secret", "tab\tsecret", "naïve-secret"])
def test_tokens_an_http_header_cannot_carry_are_refused_without_echo(token: str) -> None:
    with pytest.raises(StoreError, match="ATTEST_PINNING_TOKEN") as caught:
        PinningService("https://api.example/psa", token)
    assert_no_token(caught.value, "secret")


def test_endpoint_with_credentials_is_refused() -> None:
    with pytest.raises(StoreError, match="plain base URL") as caught:
        PinningService("https://user:hunter2@api.example/psa", TOKEN)
    assert_no_token(caught.value, "hunter2")


# -- failures, retries, time bounds -------------------------------------------------------------------------
def test_rate_limit_and_server_errors_are_retried(fake: FakePinningService) -> None:
    fake.knobs.next_errors = [429, 500, 503]
    assert client(fake).list_pins() == []
    assert fake.count("GET") == 4


def test_retries_are_bounded(fake: FakePinningService) -> None:
    fake.knobs.next_errors = [503] * 10
    with pytest.raises(StoreError, match=r"HTTP 503 \(INTERNAL_SERVER_ERROR: .*\); gave up after 3 attempts") as caught:
        client(fake, max_retries=2).list_pins()
    assert fake.count("GET") == 3
    assert "failed while serving Bearer [token]" in str(caught.value)  # the service echoed it; we scrubbed it
    assert_no_token(caught.value)


def test_retry_after_is_honoured(fake: FakePinningService) -> None:
    fake.knobs.next_errors, fake.knobs.retry_after = [429], "1"
    started = time.monotonic()
    client(fake).list_pins()
    assert time.monotonic() - started >= 1.0


def test_retry_after_past_the_deadline_gives_up_at_once(fake: FakePinningService) -> None:
    fake.knobs.next_errors, fake.knobs.retry_after = [429], "20"
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"HTTP 429 .*no time left to retry within 2s"):
        client(fake, timeout_s=2).list_pins()
    assert time.monotonic() - started < 1.0


def test_a_lost_create_response_does_not_create_a_second_pin(fake: FakePinningService) -> None:
    fake.knobs.error_after_create = 500  # the pin is stored, the 202 never arrives

    result = client(fake).pin(HELLO_V1)

    assert result.status == "pinned"
    assert fake.count("POST") == 1
    assert len(fake.pins) == 1


def test_a_rate_limited_pin_goes_through(fake: FakePinningService) -> None:
    fake.knobs.next_errors = [429, 429]
    assert client(fake).pin(HELLO_V1).status == "pinned"
    assert len(fake.pins) == 1


def test_insufficient_funds_is_not_retried(fake: FakePinningService) -> None:
    fake.knobs.next_errors = [409]
    with pytest.raises(StoreError, match=r"lack of funds or quota .*INSUFFICIENT_FUNDS"):
        client(fake).list_pins()
    assert fake.count("GET") == 1


def test_malformed_json_is_a_store_error(fake: FakePinningService) -> None:
    fake.knobs.malformed = True
    with pytest.raises(StoreError, match="not JSON; it may not implement the IPFS Pinning Service API"):
        client(fake).pin(HELLO_V1)


def test_hostile_deeply_nested_json_is_refused_without_parsing(fake: FakePinningService) -> None:
    import eth_account  # noqa: F401  # loads py_ecc, which raises the recursion limit: the dangerous setting

    fake.knobs.raw_body = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(StoreError, match="nested more than 16 levels deep"):
        client(fake).list_pins()


def test_wrong_endpoint_path_says_what_the_endpoint_should_be(fake: FakePinningService) -> None:
    service = PinningService(f"http://127.0.0.1:{fake.port}/not-psa", TOKEN, timeout_s=5)
    with pytest.raises(StoreError, match=r"no pinning API at /not-psa .*the endpoint should be the API base URL"):
        service.list_pins()


def test_a_slow_service_is_abandoned_at_the_timeout(fake: FakePinningService) -> None:
    fake.knobs.slow_s = 10
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"did not answer within 0\.5s"):
        client(fake, timeout_s=0.5).pin(HELLO_V1)
    assert time.monotonic() - started < 0.5 + 0.5


def test_an_unreachable_service_fails_after_bounded_retries() -> None:
    service = PinningService(f"http://127.0.0.1:{free_port()}/psa", TOKEN, timeout_s=5, backoff_s=0.01)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"cannot reach pinning 127\.0\.0\.1:.* gave up after 4 attempts") as caught:
        service.list_pins()
    assert time.monotonic() - started < 2
    assert_no_token(caught.value)


def test_has_is_a_quick_question(fake: FakePinningService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("attest.ipfs.pinning.HAS_TIMEOUT_S", 0.3)
    fake.knobs.slow_s = 10
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"did not answer within 0\.3s"):
        client(fake, timeout_s=30).has(HELLO_V1)
    assert time.monotonic() - started < 0.3 + 0.5

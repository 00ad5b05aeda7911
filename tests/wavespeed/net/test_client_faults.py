"""WaveSpeedClient against an emulator that misbehaves on purpose, over real loopback sockets.

Every fault the emulator can inject is driven through the real client: transient faults must be
absorbed inside the caller's deadline, permanent ones must surface as the right typed error with a
one-line actionable message, and a submit must never be sent twice unless the server provably
rejected it (``emulator.submissions`` is the referee: it counts tasks created, i.e. charges).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.images.batch_plan import images_to_tensor
from wavespeed_kontext_pack.wavespeed.limits.poller import submit_and_wait, wait_for
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from tests.support.clients import fast_client
from tests.support.hostile_server import RawServer, Script, http_reply

ATTEMPTS = 4
HISTORY_HINT = "check your WaveSpeed history"


@pytest.fixture
def client_options() -> dict[str, Any]:
    return {"attempts": ATTEMPTS}  # the tests count the tries


def t2i(prompt: str = "a lighthouse at dusk", **kw: Any) -> KontextRequest:
    return KontextRequest(prompt=prompt, **kw)


def records(emu: Emulator, route: str) -> list[Any]:
    return [r for r in emu.requests if r.route == route]


def check_message(exc: BaseException, *needles: str) -> str:
    """The error is one non-empty line, equal to .message, and says the given (actionable) things."""
    text = str(exc)
    assert text.strip(), f"{type(exc).__name__} has an empty message"
    assert "\n" not in text and "\r" not in text, f"multi-line message: {text!r}"
    assert isinstance(exc, E.WaveSpeedError) and text == exc.message
    assert len(text) <= 400, f"message too long to be read in a UI: {text!r}"
    for needle in needles:
        assert needle.lower() in text.lower(), f"{needle!r} missing from {text!r}"
    return text


def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    """Poll a condition with a timeout (for state the emulator changes on its own threads)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ============================================================================ polls: transient faults


POLL_FAULTS = [
    pytest.param("status", {"status": 500}, id="500"),
    pytest.param("status", {"status": 502}, id="502"),
    pytest.param("status", {"status": 503}, id="503"),
    pytest.param("status", {"status": 504}, id="504"),
    pytest.param("status", {"status": 429}, id="429-no-retry-after"),
    pytest.param("reset", {}, id="reset"),
    pytest.param("html", {"status": 502}, id="html-502"),
    pytest.param("malformed", {}, id="malformed-json"),
    pytest.param("wrong_shape", {}, id="wrong-shape"),
    # regression: an error code inside a 200 envelope was raised at once instead of retried
    pytest.param("envelope_error", {"status": 500}, id="envelope-500"),
    pytest.param("envelope_error", {"status": 429}, id="envelope-429"),
]


@pytest.mark.parametrize(("kind", "kw"), POLL_FAULTS)
def test_transient_poll_fault_recovers_inside_the_deadline(
    emulator: Emulator, client: WaveSpeedClient, kind: str, kw: dict[str, Any]
) -> None:
    first = client.submit(t2i())
    emulator.inject("result", kind, times=2, **kw)
    # Past this deadline the wait raises WaitTimeoutError. A check answered 429 doubles the task's
    # gap (check_pace.py): two in a row put the good check 4 + 8 s after the first.
    throttled = kw.get("status") == 429
    done = wait_for(client, first.id, timeout_s=20.0 if throttled else 5.0)

    assert done.is_completed and done.id == first.id and len(done.outputs) == 1
    assert emulator.pending_faults == 0, "both faulted polls must have reached the server"
    polls = records(emulator, "result")
    assert len(polls) >= 3  # two faulted + at least one good
    assert polls[-1].status == 200
    assert emulator.submissions == 1


def test_slow_poll_past_the_read_timeout_is_retried_and_recovers(emulator: Emulator, api_key: str) -> None:
    with fast_client(emulator.base_url, api_key, read_timeout_s=0.3) as client:
        first = client.submit(t2i())
        # The slow reply outlasts the whole wait: completing at all proves the poll was cut at the
        # 0.3 s read timeout and retried (no wall-clock assertion; the wait's own deadline is the bound).
        emulator.inject("result", "slow", delay_s=6.0)
        done = wait_for(client, first.id, timeout_s=5.0)
    assert done.is_completed
    assert len(records(emulator, "result")) >= 2
    assert emulator.submissions == 1


def test_poll_429_retry_after_is_honoured(emulator: Emulator, client: WaveSpeedClient) -> None:
    first = client.submit(t2i())
    emulator.inject("result", "status", status=429, retry_after=1)
    done = wait_for(client, first.id, timeout_s=5.0)
    assert done.is_completed
    polls = records(emulator, "result")
    assert polls[0].status == 429 and polls[1].status == 200
    gap = polls[1].t - polls[0].t
    # Backoff alone would retry after ~0.02 s; the server asked for 1 s.
    assert gap >= 0.9, f"retry came {gap:.3f}s after a 429 with Retry-After: 1"


def test_retry_after_beyond_the_deadline_fails_fast_with_rate_limited(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    first = client.submit(t2i())
    emulator.inject("result", "status", status=429, retry_after=5)
    deadline = time.monotonic() + 3.0
    with pytest.raises(E.RateLimitedError) as info:
        client.get_result(first.id, deadline=deadline)
    # Sleeping the 5 s Retry-After would pass the deadline: it raises at once, with no second try.
    assert time.monotonic() < deadline and len(records(emulator, "result")) == 1
    assert info.value.status == 429 and info.value.request_id == first.id
    check_message(info.value, "429", "parallel tasks")


# ============================================================================ polls: permanent faults


@pytest.mark.parametrize(
    ("fault", "kw", "needles", "kind"),
    [
        ("status", {"status": 500}, ("HTTP 500", "try again"), E.ServerError),
        ("html", {"status": 502}, ("502", "try again"), E.ServerError),
        ("reset", {}, ("network",), E.ConnectionFailedError),
    ],
    ids=["500", "html 502", "reset"],
)
def test_a_fault_on_every_poll_ends_in_one_server_error_line_after_the_retry_budget(
    emulator: Emulator,
    api_key: str,
    fault: str,
    kw: dict[str, Any],
    needles: tuple[str, ...],
    kind: type[E.WaveSpeedError],
) -> None:
    """A server's error and a broken connection each end in their own type of error, one line."""
    # two tries: each retry of a check waits 2 s (WaveSpeed's pace), and one proves the budget runs out
    with fast_client(emulator.base_url, api_key, attempts=2) as client:
        first = client.submit(t2i())
        emulator.inject("result", fault, times=50, **kw)
        with pytest.raises(kind) as info:
            wait_for(client, first.id, timeout_s=10.0)
    assert not isinstance(info.value, E.SubmitUncertainError)
    assert info.value.request_id == first.id and info.value.status == kw.get("status")
    text = check_message(info.value, *needles)
    assert "<html" not in text.lower() and "nginx" not in text, "raw HTML leaked into the message"
    assert len(records(emulator, "result")) == 2


def test_endless_503_hits_the_deadline_with_a_timeout_naming_the_task(
    emulator: Emulator, api_key: str
) -> None:
    with fast_client(emulator.base_url, api_key, attempts=1000) as client:
        first = client.submit(t2i())
        emulator.inject("result", "status", status=503, times=10_000)
        wall_deadline, deadline = time.time() + 2.5, time.monotonic() + 2.5
        with pytest.raises(E.WaitTimeoutError) as info:
            client.get_result(first.id, deadline=deadline)
        raised = time.time()
    # It retried at WaveSpeed's pace (2 s between checks) while a check could still come before the
    # deadline, stopped as soon as the next one could not, and sent nothing after it (event order,
    # not a timing bound).
    checks = [r.t for r in records(emulator, "result")]
    assert len(checks) >= 1 and all(b - a >= 2.0 for a, b in zip(checks, checks[1:], strict=False))
    assert checks[-1] + 2.0 > wall_deadline and raised < checks[-1] + 2.0
    assert [t for t in checks if t > wall_deadline] == []
    assert info.value.request_id == first.id
    check_message(info.value, first.id, "Poll Result")


def test_unknown_request_id_is_not_found_without_retries(emulator: Emulator, client: WaveSpeedClient) -> None:
    # Not "0123456789abcdef...": 8 characters of the test key ("test-key-0123456789") would be
    # redacted from it, as any 8 characters of a key are.
    rid = "5f3c9a7e1b2d4c6e8a0b1c2d3e4f5a6b"
    with pytest.raises(E.NotFoundError) as info:
        wait_for(client, rid, timeout_s=5.0)
    assert info.value.request_id == rid and info.value.status == 404
    check_message(info.value, rid, "check the request id")
    assert len(records(emulator, "result")) == 1


@pytest.mark.parametrize("bad", ["", "   ", "../etc/passwd", "abc def", "a" * 129, "id?x=1"])
def test_malformed_request_id_is_refused_before_any_request(
    emulator: Emulator, client: WaveSpeedClient, bad: str
) -> None:
    with pytest.raises(E.InvalidRequestError) as info:
        client.get_result(bad)
    check_message(info.value, "request id")
    assert emulator.requests == []


def test_task_that_never_finishes_raises_wait_timeout_with_its_id(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    emulator.next_tasks(never_finish=True)
    first = client.submit(t2i())
    start, wall_deadline = time.monotonic(), time.time() + 0.5
    with pytest.raises(E.WaitTimeoutError) as info:
        wait_for(client, first.id, timeout_s=0.5, first=first)
    # It waited out its timeout, and polled nothing after it (event order, not a timing bound).
    assert time.monotonic() - start >= 0.45
    assert [r.t for r in records(emulator, "result") if r.t > wall_deadline] == []
    assert info.value.request_id == first.id
    check_message(info.value, first.id, "without a new charge")
    assert emulator.submissions == 1


def test_failed_task_raises_task_failed_with_the_server_error_and_code(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    reason = "Content moderation rejected the input image."
    emulator.next_tasks(fail=reason, fail_code=1403)
    first = client.submit(t2i())
    with pytest.raises(E.TaskFailedError) as info:
        wait_for(client, first.id, timeout_s=5.0)
    assert info.value.code == 1403 and info.value.request_id == first.id  # (the line need not name it)
    check_message(info.value, reason, "1403")


def test_failed_task_via_run_keeps_the_code(emulator: Emulator, client: WaveSpeedClient) -> None:
    emulator.next_tasks(fail="Failed to generate image: internal error", fail_code=1501)
    with pytest.raises(E.TaskFailedError) as info:
        submit_and_wait(client, t2i(), timeout_s=5.0)
    assert info.value.code == 1501
    check_message(info.value, "internal error")
    assert emulator.submissions == 1


# ============================================================================ submit: retried faults


@pytest.mark.parametrize("fault", ["status", "envelope_error"], ids=["HTTP 429", "in a 200 envelope"])
def test_submit_refused_by_wavespeeds_own_429_is_retried_and_creates_one_task(
    emulator: Emulator, client: WaveSpeedClient, fault: str
) -> None:
    """A 429 in WaveSpeed's JSON envelope (``{"code": 429, ...}``, under HTTP 429 or inside a 200) is
    its own word that no task was created: the one refusal a submit is re-sent after."""
    emulator.inject("submit", fault, status=429, times=2)
    pred = client.submit(t2i())
    assert pred.id and pred.status == "created"
    sent = [r.status for r in records(emulator, "submit")]
    assert sent == ([429, 429, 200] if fault == "status" else [200, 200, 200])
    assert emulator.submissions == 1
    assert emulator.task(pred.id).input["prompt"] == "a lighthouse at dusk"


def test_submit_429_retry_after_is_honoured(emulator: Emulator, client: WaveSpeedClient) -> None:
    emulator.inject("submit", "status", status=429, retry_after=1)
    client.submit(t2i())
    subs = records(emulator, "submit")
    assert [r.status for r in subs] == [429, 200]
    gap = subs[1].t - subs[0].t
    assert gap >= 0.9, f"submit retried {gap:.3f}s after a 429 with Retry-After: 1"
    assert emulator.submissions == 1


def test_a_submit_refused_for_ever_raises_its_own_line_and_charges_nothing(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    """WaveSpeed's own 429 is a provable rejection: nothing was charged, so it is retried, then
    said plainly (never "may have been paid")."""
    emulator.inject("submit", "status", status=429, times=50)
    with pytest.raises(E.RateLimitedError) as info:
        client.submit(t2i())
    assert not isinstance(info.value, E.SubmitUncertainError)
    check_message(info.value, "rate limit", "wait a minute")
    assert len(records(emulator, "submit")) == ATTEMPTS
    assert emulator.submissions == 0


def test_submit_to_a_closed_port_is_retried_because_nothing_was_sent(api_key: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = fast_client(f"http://127.0.0.1:{port}", api_key, connect_timeout_s=1.0, attempts=3)
    with client, pytest.raises(E.ConnectionFailedError) as info:
        client.submit(t2i())
    assert not isinstance(info.value, E.SubmitUncertainError)
    assert client.request_count == 3, "a refused connection proves nothing was sent: retry it"
    check_message(info.value, "Cannot reach WaveSpeed", "check your network")


# ============================================================================ submit: never resent


SUBMIT_UNCERTAIN = [
    pytest.param("reset", {}, 0, id="reset"),
    pytest.param("reset_after_accept", {}, 1, id="reset-after-accept"),
    pytest.param("status_after_accept", {"status": 504}, 1, id="504-after-accept"),
    pytest.param("status_after_accept", {"status": 502}, 1, id="502-after-accept"),
    pytest.param("status", {"status": 500}, 0, id="500"),
    pytest.param("status", {"status": 502}, 0, id="502"),
    pytest.param("status", {"status": 504}, 0, id="504"),
    pytest.param("html", {"status": 502}, 0, id="html-502"),
    pytest.param("malformed", {}, 0, id="malformed-json"),
    pytest.param("wrong_shape", {}, 0, id="wrong-shape"),
    # regression: a 5xx code inside a 200 envelope gave a plain ServerError ("try again later")
    pytest.param("envelope_error", {"status": 502}, 0, id="envelope-502"),
    # regression: a 503 (as a status, a gateway page, or in an envelope) was re-sent as "provably
    # not accepted"; no evidence says a 503 means "not created" (WAVESPEED_API.md 13.4)
    pytest.param("status", {"status": 503}, 0, id="503"),
    pytest.param("html", {"status": 503}, 0, id="html-503"),
    pytest.param("html", {"status": 504}, 0, id="html-504"),
    pytest.param("envelope_error", {"status": 503}, 0, id="envelope-503"),
    pytest.param("status_after_accept", {"status": 503}, 1, id="503-after-accept"),
    # a 429 that is not WaveSpeed's envelope (a proxy's or CDN's page) says nothing about the task
    pytest.param("html", {"status": 429}, 0, id="html-429"),
]


@pytest.mark.parametrize(("kind", "kw", "tasks"), SUBMIT_UNCERTAIN)
def test_submit_failure_after_sending_is_not_resent(
    emulator: Emulator, client: WaveSpeedClient, kind: str, kw: dict[str, Any], tasks: int
) -> None:
    """Anything after the body left may hide an accepted (billed) task: never resend, say so."""
    emulator.inject("submit", kind, times=5, **kw)
    with pytest.raises(E.SubmitUncertainError) as info:
        client.submit(t2i())
    check_message(info.value, "not resent", "double charge", HISTORY_HINT)
    assert len(records(emulator, "submit")) == 1, "the submit was sent again"
    assert emulator.submissions == tasks


@pytest.mark.parametrize(
    "body",
    [b'{"message": "API rate limit exceeded"}', b'{"error": "Too Many Requests"}', b"Too Many Requests"],
    ids=["json-without-code", "bare-error", "text"],
)
def test_a_429_that_is_not_wavespeeds_envelope_is_uncertain_and_not_resent(
    raw_server: Callable[[Script], RawServer], api_key: str, body: bytes
) -> None:
    """A proxy or CDN in front of the API can answer 429 too: only WaveSpeed's own envelope
    (``{"code": 429, ...}``) says the submit created nothing. Anything else is never re-sent."""
    server = raw_server(lambda conn, request: conn.sendall(http_reply(429, body)))
    with fast_client(server.url, api_key) as client:
        with pytest.raises(E.SubmitUncertainError) as info:
            client.submit(t2i())
        with pytest.raises(E.SubmitUncertainError):  # as the nodes send it: 429s back to the scheduler
            client.submit(t2i(), retry_rate_limit=False)
    assert not isinstance(info.value, E.RateLimitedError)
    check_message(info.value, "429", "not resent", "double charge", HISTORY_HINT)
    assert len(server.requests) == 2, "a submit was sent again"


def test_slow_submit_past_the_read_timeout_is_uncertain_and_never_resent(
    emulator: Emulator, api_key: str
) -> None:
    with fast_client(emulator.base_url, api_key, read_timeout_s=0.3) as client:
        emulator.inject("submit", "slow", delay_s=3.0)
        start = time.monotonic()
        with pytest.raises(E.SubmitUncertainError) as info:
            client.submit(t2i())
        elapsed = time.monotonic() - start
        gave_up_first = emulator.submissions == 0  # the read timeout ended it before the server answered
    assert elapsed >= 0.3 and gave_up_first
    check_message(info.value, "ReadTimeout", HISTORY_HINT)
    # The server goes on and creates the task after its delay: exactly the case we must not repeat.
    assert wait_until(lambda: emulator.submissions == 1, timeout_s=10.0), (
        "the slow submit never created its task"
    )
    assert len(records(emulator, "submit")) == 1
    assert emulator.submissions == 1


def test_submit_401_is_authentication_error_and_not_retried(emulator: Emulator) -> None:
    with fast_client(emulator.base_url, "wrong-key-for-this-test") as client:
        with pytest.raises(E.AuthenticationError) as info:
            client.submit(t2i())
        check_message(info.value, "WAVESPEED_API_KEY", "401")
        assert info.value.status == 401
        with pytest.raises(E.AuthenticationError):
            client.get_result("0123456789abcdef0123456789abcdef")
    assert [r.route for r in emulator.requests] == ["submit", "result"]
    assert emulator.submissions == 0


def test_injected_401_on_a_poll_is_not_retried(emulator: Emulator, client: WaveSpeedClient) -> None:
    first = client.submit(t2i())
    emulator.inject("result", "status", status=401, times=5)
    with pytest.raises(E.AuthenticationError):
        wait_for(client, first.id, timeout_s=5.0)
    assert len(records(emulator, "result")) == 1


@pytest.mark.parametrize("status", [400, 402, 403])  # the live status is unknown (WAVESPEED_API.md 12.4)
def test_submit_insufficient_credits_is_insufficient_balance(
    emulator: Emulator, client: WaveSpeedClient, status: int
) -> None:
    emulator.configure(balance=0.05, low_balance_status=status)  # less than one 0.08 USD image
    with pytest.raises(E.InsufficientBalanceError) as info:
        client.submit(t2i())
    assert info.value.status == status
    check_message(info.value, "top up")
    assert len(records(emulator, "submit")) == 1
    assert emulator.submissions == 0
    assert emulator.balance == pytest.approx(0.05)


def test_server_side_400_is_invalid_request_and_not_retried(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    req = KontextRequest(
        prompt="x", model="wavespeed-ai/flux-kontext-max", image="https://nowhere.example/x.png"
    )
    emulator.inject("submit", "status", status=400, message="image: could not be fetched")
    with pytest.raises(E.InvalidRequestError) as info:
        client.submit(req)
    check_message(info.value, "could not be fetched")
    assert emulator.submissions == 0 and len(records(emulator, "submit")) == 1


# ============================================================================ downloads


def completed(client: WaveSpeedClient) -> Any:
    return submit_and_wait(client, t2i(), timeout_s=5.0)


def test_truncated_download_is_retried_and_the_bytes_are_whole(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    done = completed(client)
    clean = client.download(done.outputs[0])
    emulator.inject("download", "truncate")
    data = client.download(done.outputs[0])
    assert data == clean
    downloads = records(emulator, "download")
    assert len(downloads) == 3  # clean, truncated, retried
    assert images_to_tensor([data]).shape[0] == 1


def test_persistently_truncated_download_raises_download_error(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    done = completed(client)
    emulator.inject("download", "truncate", times=50)
    with pytest.raises(E.DownloadError) as info:
        client.download(done.outputs[0])
    check_message(info.value, "Downloading an output failed")
    assert len(records(emulator, "download")) == ATTEMPTS


@pytest.mark.parametrize("status", [500, 503])
def test_download_5xx_is_retried(emulator: Emulator, client: WaveSpeedClient, status: int) -> None:
    done = completed(client)
    emulator.inject("download", "status", status=status, times=2)
    data = client.download(done.outputs[0])
    assert images_to_tensor([data]).ndim == 4
    assert [r.status for r in records(emulator, "download")] == [status, status, 200]


def test_download_reset_is_retried(emulator: Emulator, client: WaveSpeedClient) -> None:
    done = completed(client)
    emulator.inject("download", "reset")
    data = client.download(done.outputs[0])
    assert images_to_tensor([data]).ndim == 4
    assert len(records(emulator, "download")) == 2


def test_download_404_is_not_retried(emulator: Emulator, client: WaveSpeedClient) -> None:
    with pytest.raises(E.DownloadError) as info:
        client.download(f"{emulator.base_url}/cdn/output/missing.jpeg")
    check_message(info.value, "HTTP 404")
    assert len(records(emulator, "download")) == 1


def test_corrupt_download_returns_bytes_that_fail_to_decode(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    done = completed(client)
    clean = client.download(done.outputs[0])
    emulator.inject("download", "corrupt", times=50)
    data = client.download(done.outputs[0])
    # Full length arrives (the transport cannot tell), so the decoder is the line of defence.
    assert len(data) == len(clean) and data != clean
    with pytest.raises(E.ImageDecodeError) as info:
        images_to_tensor([data])
    check_message(info.value)
    assert len(records(emulator, "download")) == 2


def test_download_over_the_size_cap_is_refused(emulator: Emulator, api_key: str) -> None:
    with fast_client(emulator.base_url, api_key, max_download_bytes=200) as client:
        done = completed(client)
        with pytest.raises(E.DownloadError) as info:
            client.download(done.outputs[0])
    check_message(info.value, "200-byte cap", "refusing")
    assert len(records(emulator, "download")) == 1, "an over-cap output must not be retried"


# ============================================================================ the submission counter


def test_mixed_fault_batch_never_creates_more_tasks_than_it_should(emulator: Emulator, api_key: str) -> None:
    """Concurrent submits under every submit fault: tasks == successes + accepted-then-failed."""
    after_accept = 0
    plan: list[tuple[str, dict[str, Any], int]] = [
        ("status", {"status": 503}, 3),
        ("status", {"status": 429}, 3),
        ("html", {"status": 429}, 1),
        ("reset", {}, 2),
        ("reset_after_accept", {}, 2),
        ("status_after_accept", {"status": 504}, 2),
        ("status", {"status": 500}, 1),
        ("status", {"status": 502}, 1),
        ("html", {"status": 502}, 1),
        ("malformed", {}, 1),
        ("wrong_shape", {}, 1),
        ("slow", {"delay_s": 0.05}, 2),  # slow but inside the read timeout: a plain success
    ]
    rng = random.Random(1234)
    rng.shuffle(plan)
    for kind, kw, times in plan:
        emulator.inject("submit", kind, times=times, **kw)
        if kind.endswith("_after_accept"):
            after_accept += times
    fault_uses = sum(times for _, _, times in plan)
    n_submits = fault_uses + 6

    outcomes: list[str] = []
    lock = threading.Lock()
    with fast_client(emulator.base_url, api_key, attempts=6) as client:

        def one(i: int) -> None:
            try:
                pred = client.submit(t2i(f"batch item {i}"))
                result = "ok:" + pred.id
            except E.SubmitUncertainError:
                result = "uncertain"
            except E.WaveSpeedError as exc:
                result = type(exc).__name__
            with lock:
                outcomes.append(result)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, range(n_submits)))

    successes = [o for o in outcomes if o.startswith("ok:")]
    assert len(outcomes) == n_submits
    assert emulator.pending_faults == 0, "every injected fault must have fired"
    assert len(set(successes)) == len(successes), "two submits returned the same task"
    assert emulator.submissions == len(successes) + after_accept, outcomes
    # Every non-retryable fault cost exactly one uncertain outcome; nothing else failed.
    non_retryable = sum(t for k, kw, t in plan if k != "slow" and (k, kw.get("status")) != ("status", 429))
    assert outcomes.count("uncertain") == non_retryable, outcomes
    assert len(successes) == n_submits - non_retryable
    # Every successful id is a real task the emulator knows.
    for o in successes:
        assert emulator.task(o[3:]).input["prompt"].startswith("batch item")
    # One click, one bill: no prompt (each submit has its own) owns two tasks.
    prompts = [emulator.task(item["id"]).input["prompt"] for item in list_tasks(emulator, api_key)]
    assert len(prompts) == emulator.submissions
    doubled = sorted({p for p in prompts if prompts.count(p) > 1})
    assert not doubled, f"submitted twice: {doubled}"


def list_tasks(emu: Emulator, key: str) -> list[dict[str, Any]]:
    """Every task the emulator holds, through its public list endpoint."""
    r = requests.post(
        f"{emu.base_url}/api/v3/predictions",
        json={"page": 1, "page_size": 100},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["data"]["items"]
    assert len(items) <= 100
    return items


def test_sequential_submits_one_task_each_under_retryable_faults(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    ids = []
    for i in range(5):
        emulator.inject("submit", "status" if i % 2 else "envelope_error", status=429)
        ids.append(client.submit(t2i(f"n{i}")).id)
    assert len(set(ids)) == 5
    assert emulator.submissions == 5
    assert len(records(emulator, "submit")) == 10


def test_raw_requests_see_what_the_client_sees(emulator: Emulator, api_key: str) -> None:
    """Guard for the tests above: a reset_after_accept really creates a task and then drops the line."""
    emulator.inject("submit", "reset_after_accept")
    with pytest.raises(requests.ConnectionError):
        requests.post(
            f"{emulator.base_url}/api/v3/wavespeed-ai/flux-kontext-max/text-to-image",
            json={"prompt": "x"},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=5,
        )
    assert emulator.submissions == 1

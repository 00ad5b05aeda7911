"""Issue 11 review follow-ups: Poll Result's memory refusals, task ids in every message once a
task exists, Retry-After wording, the session budget for paid errors, the upload revalidation HEAD
and the one URL parser. Real loopback servers only (the emulator or tests/support/hostile_server.py)."""

from __future__ import annotations

import contextlib
import importlib
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poller import wait_for
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient
from wavespeed_kontext_pack.wavespeed.settings.reference_urls import unreachable_reason

from emulator import Emulator
from tests.support.clients import fast_client
from tests.support.hostile_server import RawServer, Script, http_reply, png_header as _png_header

KEY = "review-gaps-key-1234567"
TASK_ID = "fedcba9876543210fedcba9876543210"


def _path_of(request: bytes) -> str:
    return request.split(b" ", 2)[1].decode()


def _mod(pack: ModuleType, name: str) -> Any:
    """A module of the loaded pack (its own copy: errors raised there are its classes)."""
    return importlib.import_module(f"{pack.__name__}.{name}")


def _context(pack: ModuleType, client: Any) -> Any:
    """A task call's context that uses ``client`` (a fast_client on the test's server)."""
    return _mod(pack, "wavespeed.tasks.context").TaskContext(client=client)


def _fetch(pack: ModuleType, server: RawServer, names: list[str]) -> BaseException:
    """Run Poll Result's download-and-decode step for a completed task with these outputs."""
    prediction = _mod(pack, "wavespeed.api.reply_types").Prediction(
        id=TASK_ID, status="completed", outputs=tuple(f"{server.url}/{n}" for n in names)
    )
    with fast_client(server.url, KEY, attempts=2) as client:
        try:
            _mod(pack, "wavespeed.tasks.results").fetch_images(prediction, _context(pack, client))
        except BaseException as exc:
            return exc
    raise AssertionError("fetch_images did not fail")


# ================================================================ 1. memory refusals in Poll Result


def test_too_many_outputs_are_refused_before_any_download(
    pack: ModuleType, raw_server: Callable[[Script], RawServer]
) -> None:
    server = raw_server(lambda conn, req: conn.sendall(http_reply(200, _png_header(8, 8))))
    count = _mod(pack, "wavespeed.images.batch_plan").MAX_OUTPUTS + 1
    exc = _fetch(pack, server, [f"o{i}.png" for i in range(count)])
    assert isinstance(exc, _mod(pack, "wavespeed.images.batch_plan").OutputsTooLargeError), exc
    assert server.accepted == 0  # nothing was downloaded
    text = str(exc)
    assert TASK_ID in text and exc.request_id == TASK_ID
    assert "not a usable image" not in text and "image_urls" not in text
    assert "task history on wavespeed.ai" in text


def test_a_batch_over_the_memory_limit_is_downloaded_once_and_names_its_urls(
    pack: ModuleType, raw_server: Callable[[Script], RawServer]
) -> None:
    """40000x1000 + 1000x40000 pad to 35.8 GiB: refused after one download, never retried."""
    headers = {"/a.png": _png_header(40_000, 1_000), "/b.png": _png_header(1_000, 40_000)}
    server = raw_server(lambda conn, req: conn.sendall(http_reply(200, headers[_path_of(req)])))
    exc = _fetch(pack, server, ["a.png", "b.png"])
    assert isinstance(exc, _mod(pack, "wavespeed.images.batch_plan").OutputsTooLargeError), exc
    assert server.accepted == 2  # one download per output: a memory refusal is not retried
    text = str(exc)
    assert TASK_ID in text and "35.8 GiB" in text and "not a usable image" not in text
    assert f"{server.url}/a.png" in text and f"{server.url}/b.png" in text  # something to open
    assert "image_urls" not in text and "\n" not in text


def test_urls_too_long_for_the_line_are_never_cut_the_line_says_where_they_are(
    pack: ModuleType, raw_server: Callable[[Script], RawServer]
) -> None:
    """CDN URLs are ~100 characters: a line that cannot hold them whole names the places that do."""
    long_a, long_b = "a" * 120 + ".png", "b" * 120 + ".png"
    headers = {f"/{long_a}": _png_header(40_000, 1_000), f"/{long_b}": _png_header(1_000, 40_000)}
    server = raw_server(lambda conn, req: conn.sendall(http_reply(200, headers[_path_of(req)])))
    exc = _fetch(pack, server, [long_a, long_b])
    text = str(exc)
    assert isinstance(exc, _mod(pack, "wavespeed.images.batch_plan").OutputsTooLargeError), exc
    assert text.endswith(".") and "…" not in text and long_a not in text
    assert TASK_ID in text and "task history on wavespeed.ai" in text and "journal" in text


def test_a_corrupt_output_names_where_to_get_it_instead_of_polling_again(
    pack: ModuleType, raw_server: Callable[[Script], RawServer]
) -> None:
    server = raw_server(lambda conn, req: conn.sendall(http_reply(200, b"not an image at all")))
    exc = _fetch(pack, server, ["x.png"])
    assert isinstance(exc, _mod(pack, "wavespeed.core.errors").ImageDecodeError), exc
    assert server.accepted == 2  # a corrupt file is fetched once more
    text = str(exc)
    assert TASK_ID in text and f"{server.url}/x.png" in text
    assert "run Poll Result with this request id again" not in text


# ========================================================= 2. every message names the task id


def test_a_download_error_names_the_task(pack: ModuleType, raw_server: Callable[[Script], RawServer]) -> None:
    server = raw_server(lambda conn, req: conn.sendall(http_reply(404, b"gone")))
    exc = _fetch(pack, server, ["x.png"])
    assert isinstance(exc, _mod(pack, "wavespeed.core.errors").DownloadError), exc
    assert TASK_ID in str(exc) and exc.request_id == TASK_ID


def test_the_download_budget_names_the_task(
    pack: ModuleType, raw_server: Callable[[Script], RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CDN that dribbles one byte at a time until Poll Result's download budget ends it."""
    done = threading.Event()
    monkeypatch.setattr(_mod(pack, "wavespeed.tasks.results"), "DOWNLOAD_BUDGET_S", 0.5)

    def dribble(conn: socket.socket, req: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(OSError):
            while not done.wait(0.05):
                conn.sendall(b"x")

    server = raw_server(dribble)
    try:
        exc = _fetch(pack, server, ["slow.png"])
    finally:
        done.set()
    assert isinstance(exc, _mod(pack, "wavespeed.core.errors").WaitTimeoutError), exc
    assert TASK_ID in str(exc) and exc.request_id == TASK_ID and "Poll Result" in str(exc)


def test_a_huge_retry_after_on_a_poll_names_the_task_in_the_text(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    task = client.submit(KontextRequest(prompt="poll"))
    emulator.inject("result", "retry_after", message="3600")
    with pytest.raises(E.RateLimitedError) as info:
        wait_for(client, task.id, timeout_s=30.0)
    text = str(info.value)
    assert task.id in text and info.value.request_id == task.id and "Poll Result" in text
    assert "retries ran out" not in text


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        ("status", 500, None),
        ("status", 500, "a server message far longer than one line " * 50),
        ("malformed", None, None),
        ("status", 401, None),
        ("reset", None, None),
        ("status", 400, None),
    ],
)
def test_every_poll_error_names_its_task(
    kind: str, status: int | None, message: str | None, emulator: Emulator, api_key: str
) -> None:
    """Retries ran out, the key was refused, the reply was garbage: the task exists and is paid,
    so the line names it, and a 300-character cap shortens the server's message, never the id."""
    with fast_client(emulator.base_url, api_key, attempts=2) as client:  # a retried check waits 2 s
        task = client.submit(KontextRequest(prompt="poll errors"))
        emulator.inject("result", kind, times=10, status=status, message=message)
        with pytest.raises(E.WaveSpeedError) as info:
            client.get_result(task.id)
    text = str(info.value)
    assert f"task {task.id}" in text and info.value.request_id == task.id
    assert "Poll Result" in text and "\n" not in text and len(text) <= E.LINE_LIMIT


# =========================================================== 3. a huge Retry-After on a submit


def test_a_huge_retry_after_on_a_submit_says_nothing_was_retried_or_charged(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    emulator.inject("submit", "retry_after", message="3600")
    with pytest.raises(E.RateLimitedError) as info:
        client.submit(KontextRequest(prompt="huge wait"))
    text = str(info.value)
    assert "retries ran out" not in text and "retry" not in text.replace("Retry-After", "")
    assert "asked to wait 3600 s" in text and "no task was created" in text
    assert emulator.submissions == 0


# ================================================ 4. an error naming a task keeps its price


def test_an_error_with_a_request_id_is_never_not_accepted(pack: ModuleType) -> None:
    not_accepted: Callable[[BaseException], bool] = _mod(
        pack, "wavespeed.tasks.paid.payment"
    ).was_not_accepted
    PE: Any = pack.wavespeed.core.errors
    assert not not_accepted(PE.ServerError("x", request_id=TASK_ID))
    assert not not_accepted(PE.ServerError("x", request_id=TASK_ID, status=503))
    assert not not_accepted(PE.RateLimitedError("x", request_id=TASK_ID, status=429))
    assert not not_accepted(PE.InvalidRequestError("x", request_id=TASK_ID))
    assert not not_accepted(PE.ConnectionFailedError("x", request_id=TASK_ID))
    assert not_accepted(PE.ServerError("x"))  # still given back when nothing was sent
    assert not_accepted(PE.ConnectionFailedError("x"))


def test_an_uncertain_submit_that_names_a_task_is_journaled(
    pack: ModuleType,
    raw_server: Callable[[Script], RawServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """HTTP 200 with code 500 next to a valid id: paid, so journaled and named, and the session
    budget keeps its price."""
    body = json.dumps({"code": 500, "message": "oops", "data": {"id": TASK_ID, "status": "created"}})
    server = raw_server(lambda conn, req: conn.sendall(http_reply(200, body.encode())))
    monkeypatch.setenv("WAVESPEED_API_KEY", KEY)
    monkeypatch.setenv("WAVESPEED_BASE_URL", server.url)
    monkeypatch.setenv("WAVESPEED_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WAVESPEED_CONFIG_FILE", raising=False)
    payment = _mod(pack, "wavespeed.tasks.paid.payment")
    spent_before = payment.SESSION_SPEND.spent_usd
    request = _mod(pack, "wavespeed.api.kontext_request").KontextRequest(prompt="paid but odd", seed=5)
    try:
        with pytest.raises(_mod(pack, "wavespeed.core.errors").SubmitUncertainError) as info:
            _mod(pack, "wavespeed.tasks.paid.submit").submit_task(
                request, _mod(pack, "wavespeed.tasks.context").TaskContext()
            )
        assert info.value.request_id == TASK_ID and TASK_ID in str(info.value)
        record = _mod(pack, "wavespeed.tasks.journals").current_journal().get(TASK_ID)
        assert record is not None and record.request_id == TASK_ID
    finally:
        _mod(pack, "wavespeed.tasks.journals").forget_journals()
    assert server.accepted == 1  # never resent
    assert payment.SESSION_SPEND.spent_usd > spent_before  # the price was not given back


# ============================================== 5. the upload revalidation HEAD is the client's


def test_url_is_live_sends_no_key_and_follows_no_redirect(raw_server: Callable[[Script], RawServer]) -> None:
    target = raw_server(lambda conn, req: conn.sendall(http_reply(200, b"")))
    redirect = raw_server(
        lambda conn, req: conn.sendall(http_reply(302, b"", headers={"Location": f"{target.url}/f.png"})),
    )
    live = raw_server(lambda conn, req: conn.sendall(http_reply(200, b"")))
    with WaveSpeedClient(KEY, "http://127.0.0.1:9") as client:
        assert client.url_is_live(f"{live.url}/f.png")
        assert not client.url_is_live(f"{redirect.url}/f.png")
    assert target.accepted == 0  # the redirect was not followed
    sent = b"".join(live.requests + redirect.requests)
    assert sent.startswith(b"HEAD ") and b"authorization" not in sent.lower() and KEY.encode() not in sent


def test_url_is_live_ends_at_the_clients_wall_clock_window(raw_server: Callable[[Script], RawServer]) -> None:
    """Headers dribbled one byte at a time never time out a socket read; the window still ends it
    (ordering proof: the client has given up while the server is still dribbling)."""
    stop = threading.Event()
    sent: list[int] = []
    head = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * 10_000  # 500 s at one byte per 50 ms

    def dribble(conn: socket.socket, req: bytes) -> None:
        with contextlib.suppress(OSError):
            for byte in head:
                if stop.is_set():
                    break
                conn.sendall(bytes([byte]))
                sent.append(byte)
                stop.wait(0.05)

    server = raw_server(dribble)
    with WaveSpeedClient(KEY, "http://127.0.0.1:9", connect_timeout_s=1.0, read_timeout_s=1.0) as client:
        client.request_cap_s = 0.5
        assert not client.url_is_live(f"{server.url}/f.png")
        given_up_at = len(sent)
    stop.set()
    assert server.accepted == 1 and 0 < given_up_at < len(head)


# ======================================================================= 6. one URL parser


def test_image_url_rules_read_the_api_base_with_the_clients_parser() -> None:
    """A base URL the client refuses (userinfo) lets no private image URL through on its account."""
    assert unreachable_reason("http://10.0.0.1:9/x.png", api_base="http://u:p@10.0.0.1:9") is not None
    assert unreachable_reason("http://127.0.0.1:9/x.png", api_base="http://127.0.0.1:9") is None
    with pytest.raises(E.ConfigError):
        WaveSpeedClient(KEY, "http://u:p@10.0.0.1:9")

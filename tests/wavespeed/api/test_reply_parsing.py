"""Issue 11, class 3: parsing is total and size-capped, and a reply's task id always gets through.

Over real loopback sockets: the emulator's `absurd` and `huge` faults and a raw-socket server for
replies the emulator should not send (close-delimited 100 MB bodies, garbage next to a valid id).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.replies import MAX_DEPTH, MAX_REPLY_BYTES, MalformedReply, load_json
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poller import wait_for
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from tests.support.clients import fast_client
from tests.support.hostile_server import RawServer, http_reply

KEY = "hostile-parse-key-123456"
# Not "0123456789abcdef...": it holds 8 characters of the test keys ("...-0123456789"), which
# errors redact as they would any 8 characters of a key.
TASK_ID = "9c4e7a1f3b5d8e2a6c0f4b7d1e3a5c9f"
HUNDRED_MB = 100 * 1024 * 1024


@pytest.fixture
def client_options() -> dict[str, Any]:
    return {"attempts": 2}


def serve(body: bytes, status: int = 200) -> RawServer:
    return RawServer(lambda conn, req: conn.sendall(http_reply(status, body)))


# ============================================================================ the reported cases


def test_absurd_submit_reply_still_gives_the_paid_task_id(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    """1e400, NaN and 5000-deep nesting next to a valid id: the id comes back, the garbage is dropped."""
    emulator.inject("submit", "absurd")
    prediction = client.submit(KontextRequest(prompt="absurd"))
    assert prediction.id == emulator.task(prediction.id).id
    assert prediction.inference_ms is None
    assert emulator.submissions == 1
    emulator.inject("result", "absurd", times=3)
    assert wait_for(client, prediction.id, timeout_s=10).is_completed


def test_a_100mb_reply_is_never_read_whole() -> None:
    server = RawServer()
    server.script = lambda conn, req: server.send_stream(
        conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n", HUNDRED_MB
    )
    try:
        with fast_client(server.url, KEY, attempts=1) as client, pytest.raises(E.ServerError) as info:
            client.get_result(TASK_ID)
    finally:
        server.stop()
    assert "malformed" in str(info.value) and str(MAX_REPLY_BYTES) in str(info.value)
    assert server.bytes_sent < HUNDRED_MB // 4, f"the client took {server.bytes_sent} bytes"


def test_a_huge_declared_reply_is_refused_typed(emulator: Emulator, client: WaveSpeedClient) -> None:
    task = client.submit(KontextRequest(prompt="huge"))
    emulator.inject("result", "huge", times=5)
    with pytest.raises(E.ServerError) as info:
        client.get_result(task.id)
    assert "malformed" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        {"id": TASK_ID, "status": ["x"], "outputs": {"a": 1}, "error": {"e": 1}, "has_nsfw_contents": 7},
        {"id": TASK_ID, "timings": {"inference": 10**30}, "code": "5004", "model": 3, "created_at": []},
        {"id": TASK_ID, "status": "\ud800" * 3, "error": "bad \ud800 text"},
    ],
)
def test_garbage_fields_next_to_a_valid_id_are_dropped(data: dict[str, Any]) -> None:
    body = json.dumps({"code": 200, "message": "ok", "data": data}).encode("utf-8", "surrogatepass")
    server = serve(body)
    try:
        with fast_client(server.url, KEY, attempts=2) as client:
            prediction = client.submit(KontextRequest(prompt="garbage"))
    finally:
        server.stop()
    assert prediction.id == TASK_ID and prediction.status == "created"
    assert server.accepted == 1
    prediction.error.encode("utf-8")  # printable: no lone surrogate survives


def test_an_error_code_next_to_a_valid_id_raises_with_the_request_id() -> None:
    body = json.dumps({"code": 500, "message": "oops", "data": {"id": TASK_ID, "status": "created"}}).encode()
    server = serve(body)
    try:
        with (
            fast_client(server.url, KEY, attempts=2) as client,
            pytest.raises(E.SubmitUncertainError) as info,
        ):
            client.submit(KontextRequest(prompt="paid but odd"))
    finally:
        server.stop()
    assert info.value.request_id == TASK_ID and TASK_ID in str(info.value)
    assert server.accepted == 1  # never resent


def test_deeply_nested_reply_without_id_is_a_typed_uncertain_submit() -> None:
    server = serve(b"[" * 100_000 + b"]" * 100_000)
    try:
        with fast_client(server.url, KEY, attempts=2) as client, pytest.raises(E.SubmitUncertainError):
            client.submit(KontextRequest(prompt="deep"))
    finally:
        server.stop()
    assert server.accepted == 1


# ============================================================================ the parser alone


HOSTILE_BODIES: list[bytes] = [
    b"",
    b"\xff\xfe\x00",
    b"NaN",
    b"1e400",
    b"-1e400",
    b"9" * 5000,
    b'{"a": Infinity, "b": -Infinity, "c": NaN}',
    b"[" * 200_000,
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"s": "\\ud800"}',
    b'"' + b"\\" * 10_001 + b'"',
    b'{"data": {"id": "x"}} trailing',
    b"\xef\xbb\xbf{}",
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_load_json_is_total(body: bytes) -> None:
    try:
        value = load_json(body)
    except MalformedReply:
        return
    for piece in (value,) if not isinstance(value, dict) else value.values():
        assert not isinstance(piece, float) or piece == piece and abs(piece) != float("inf")


def test_absurd_numbers_become_absent_and_deep_parts_are_cut() -> None:
    value = load_json(b'{"a": 1e400, "b": NaN, "c": ' + b"9" * 30 + b', "d": 2.5, "e": 7}')
    assert value == {"a": None, "b": None, "c": None, "d": 2.5, "e": 7}
    deep = load_json(b'{"id": "x", "deep": ' + b"[" * 1000 + b"]" * 1000 + b"}")
    assert deep["id"] == "x"
    depth, node = 0, deep["deep"]
    while isinstance(node, list) and node:
        node, depth = node[0], depth + 1
    assert depth < MAX_DEPTH


@pytest.mark.parametrize(
    "data",
    [None, [], "x", {"id": 5}, {"id": "a b"}, {"id": "x" * 200}, {"id": "ok"}, {"id": "ok", "status": 5}],
)
def test_from_data_raises_only_value_error(data: object) -> None:
    for lenient in (False, True):
        with contextlib.suppress(ValueError):
            Prediction.from_data(data, lenient=lenient)


def test_from_data_strict_refuses_a_completed_task_without_outputs() -> None:
    with pytest.raises(ValueError):
        Prediction.from_data({"id": "ok", "status": "completed", "outputs": "x"})
    assert Prediction.from_data({"id": "ok", "status": "processing", "outputs": "x"}).outputs == ()


def test_output_urls_are_the_outputs_that_can_be_opened_again() -> None:
    """What Poll Result's and Batch's image_urls list and a decode failure names: URLs only, in order
    (a sync-mode base64 output is no address)."""
    outputs = ("https://cdn.example/a.png", "data:image/png;base64,iVBORw0K", "iVBORw0KGgo", "http://x/b.jpg")
    prediction = Prediction(id="t1", status="completed", outputs=outputs)
    assert prediction.output_urls == ("https://cdn.example/a.png", "http://x/b.jpg")

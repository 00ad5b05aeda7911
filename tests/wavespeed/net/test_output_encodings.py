"""Issue 17, cases 7 and 10(d): an output's transfer shape must not lose a paid result, nor lead the
download elsewhere. A gzip/deflate-encoded output is delivered decoded (it failed as "truncated": the
decoded length was compared with the encoded Content-Length); the size cap holds for the decoded
bytes, so a gzip bomb is refused in one line before it fills memory; a body cut short is still told
from a whole one by the bytes on the wire; a redirect to another host is not followed. Real loopback
servers (tests/support/hostile_server.py), no mocked requests.
"""

from __future__ import annotations

import gzip
import os
import socket
import zlib
from collections.abc import Callable

import pytest
from wavespeed_kontext_pack.wavespeed.core import errors as E

from tests.support.clients import fast_client
from tests.support.hostile_server import RawServer, Script, http_reply, run_bounded

KEY = "download-encoding-key-0123456789"
PAYLOAD = os.urandom(200_000) + b"\x00" * 300_000  # half noise, half compressible


@pytest.fixture
def serve(raw_server: Callable[[Script], RawServer]) -> Callable[[bytes], RawServer]:
    """Start a server that answers every request with ``reply`` (stopped after the test)."""
    return lambda reply: raw_server(lambda conn, request: conn.sendall(reply))


def download(url: str, max_bytes: int | None = None) -> object:
    client = fast_client("http://127.0.0.1:9", KEY)
    if max_bytes is not None:
        client.max_download_bytes = max_bytes
    with client:
        return run_bounded(lambda: client.download(url, request_id="task-enc-1"), 30.0, "the download")


def encoded(body: bytes, encoding: str, **extra: str) -> bytes:
    return http_reply(200, body, headers={"Content-Encoding": encoding, **extra})


def test_a_gzip_output_is_delivered_decoded(serve: Callable[[bytes], RawServer]) -> None:
    server = serve(encoded(gzip.compress(PAYLOAD), "gzip"))
    assert download(f"{server.url}/out.png") == PAYLOAD


def test_a_deflate_output_is_delivered_decoded(serve: Callable[[bytes], RawServer]) -> None:
    server = serve(encoded(zlib.compress(PAYLOAD), "deflate"))
    assert download(f"{server.url}/out.png") == PAYLOAD


def test_a_gzip_output_over_the_cap_once_decoded_is_refused(serve: Callable[[bytes], RawServer]) -> None:
    """The encoded body is small, the decoded one is over the cap: the cap is on what we keep."""
    server = serve(encoded(gzip.compress(PAYLOAD), "gzip"))
    outcome = download(f"{server.url}/out.png", max_bytes=len(PAYLOAD) - 1)
    assert isinstance(outcome, E.DownloadError), outcome
    assert "cap once decoded" in str(outcome) and "task-enc-1" in str(outcome)
    assert len(server.requests) == 1  # over the cap is not retried


def test_a_gzip_bomb_is_refused_before_it_fills_memory(serve: Callable[[bytes], RawServer]) -> None:
    """1 GiB of zeros in about 1 MiB of gzip, under a 4 MiB cap: refused, one line. (A decoder that
    inflated the whole body at once would ask for 1 GiB; urllib3 inflates one chunk per read.)"""
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\x00" * (1 << 20)
    body = b"".join(bomb.compress(block) for _ in range(1024)) + bomb.flush()
    assert len(body) < 2 << 20
    server = serve(encoded(body, "gzip"))
    outcome = download(f"{server.url}/bomb.png", max_bytes=4 << 20)
    assert isinstance(outcome, E.DownloadError), outcome
    assert "exceeds the 4194304-byte cap once decoded" in str(outcome)
    assert "\n" not in str(outcome)


def test_a_gzip_body_cut_short_is_still_told_truncated(raw_server: Callable[[Script], RawServer]) -> None:
    """Content-Length says the whole encoded body; half of it is sent, then the server hangs up."""
    whole = gzip.compress(PAYLOAD)
    head = http_reply(200, b"", headers={"Content-Encoding": "gzip"}).replace(
        b"Content-Length: 0", f"Content-Length: {len(whole)}".encode()
    )

    def cut(conn: socket.socket, request: bytes) -> None:
        conn.sendall(head + whole[: len(whole) // 2])
        conn.shutdown(socket.SHUT_RDWR)

    server = raw_server(cut)
    outcome = download(f"{server.url}/out.png")
    assert isinstance(outcome, E.DownloadError), outcome
    assert len(server.requests) > 1  # a broken body is retried, then reported


def test_a_redirect_within_the_outputs_host_is_followed(raw_server: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, request: bytes) -> None:
        if request.startswith(b"GET /old.png"):
            conn.sendall(http_reply(302, b"", headers={"Location": "/new.png"}))
        else:
            conn.sendall(http_reply(200, PAYLOAD))

    server = raw_server(script)
    assert download(f"{server.url}/old.png") == PAYLOAD


def test_a_redirect_to_another_host_is_not_followed(serve: Callable[[bytes], RawServer]) -> None:
    elsewhere = serve(http_reply(200, PAYLOAD))
    cdn = serve(http_reply(302, b"", headers={"Location": f"http://localhost:{elsewhere.port}/x.png"}))
    outcome = download(f"{cdn.url}/out.png")
    assert isinstance(outcome, E.DownloadError), outcome
    assert "redirects to another host" in str(outcome) and "task-enc-1" in str(outcome)
    assert elsewhere.accepted == 0
    assert len(cdn.requests) == 1  # a refused redirect is not retried

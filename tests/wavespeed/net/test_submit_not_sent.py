"""Issue 17, case 6: a failed submit counts as possibly paid only if request bytes reached the socket.

A TLS failure (an untrusted certificate, a reset during the handshake), a refused connection or a
DNS failure sends nothing: the client says "nothing was sent, nothing charged" (a
ConnectionFailedError with no status, which the paid path counts as not accepted) and a re-queue is not blocked. A server that read
the request, or whose socket took its bytes, may have accepted it: that stays "uncertain". Every
server here is a real loopback socket; no test mocks requests.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import ModuleType

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.core import errors as E

from emulator import Emulator
from tests.support.clients import fast_client
from tests.support.hostile_server import RawServer, ResetServer, run_bounded, self_signed_tls
from tests.support.node_calls import generate

KEY = "not-sent-key-0123456789abcdef"


def submit(base_url: str) -> object:
    with fast_client(base_url, KEY) as client:
        return run_bounded(lambda: client.submit(KontextRequest(prompt="x")), 30.0, "the submit")


def assert_nothing_sent(outcome: object) -> None:
    assert isinstance(outcome, E.ConnectionFailedError), outcome
    assert not isinstance(outcome, E.SubmitUncertainError), outcome
    assert outcome.status is None and outcome.request_id is None
    assert "nothing was sent, nothing charged" in str(outcome), outcome
    assert "\n" not in str(outcome) and KEY not in str(outcome)


def test_an_untrusted_certificate_sent_nothing(tmp_path: Path) -> None:
    """The reported case: a self-signed certificate was reported as "the submit was sent"."""
    context, _cert = self_signed_tls(tmp_path)
    server = RawServer(tls=context)
    try:
        outcome = submit(server.url)
    finally:
        server.stop()
    assert_nothing_sent(outcome)
    assert "TLS certificate verify failed" in str(outcome)
    assert server.requests == []  # the handshake failed: no request reached the server
    assert server.accepted == 1  # not retried: no retry changes a certificate


def test_a_download_from_an_untrusted_certificate_is_not_retried(tmp_path: Path) -> None:
    """No retry changes a certificate: a download stops at its first try, as an API call does
    (it was retried until the attempts ran out), and its line names the task and the reason."""
    context, _cert = self_signed_tls(tmp_path)
    server = RawServer(tls=context)
    rid = "9c4e7a1f3b5d8e2a6c0f4b7d1e3a5c9f"
    try:
        with fast_client("http://127.0.0.1:9", KEY, attempts=4) as client:
            outcome = run_bounded(
                lambda: client.download(f"{server.url}/out.png", request_id=rid), 30.0, "the download"
            )
    finally:
        server.stop()
    assert isinstance(outcome, E.DownloadError), outcome
    assert outcome.request_id == rid and "TLS certificate verify failed" in str(outcome)
    assert server.accepted == 1 and server.requests == []


def test_a_reset_during_the_tls_handshake_sent_nothing() -> None:
    server = ResetServer(after_data=False)
    try:
        outcome = submit(server.url("https"))
    finally:
        server.stop()
    assert_nothing_sent(outcome)
    assert server.accepted >= 1


def test_a_refused_connection_sent_nothing() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: the connection is refused
    outcome = submit(f"http://127.0.0.1:{port}")
    assert_nothing_sent(outcome)
    assert "connection refused" in str(outcome)


def test_a_reset_after_the_bytes_arrived_unread_is_uncertain() -> None:
    """The server never read the request, but its socket took the bytes: from here nobody can
    tell, so it may have been accepted (the rule is about bytes written, not about the server)."""
    server = ResetServer(after_data=True)
    try:
        outcome = submit(server.url("http"))
    finally:
        server.stop()
    assert isinstance(outcome, E.SubmitUncertainError), outcome
    assert server.accepted == 1  # never resent


def test_a_server_that_read_the_request_then_dropped_is_uncertain() -> None:
    server = RawServer(lambda conn, request: conn.shutdown(socket.SHUT_RDWR))
    try:
        outcome = submit(server.url)
    finally:
        server.stop()
    assert isinstance(outcome, E.SubmitUncertainError), outcome
    assert "may" in str(outcome) or "not resent" in str(outcome)
    assert len(server.requests) == 1 and b"POST" in server.requests[0]  # read, and never resent


def _generate(pack: ModuleType) -> object:
    try:
        return asyncio.run(generate("a fixed-seed prompt", unique_id="5"))
    except Exception as exc:
        return exc


def test_a_fixed_seed_requeue_after_an_untrusted_certificate_is_not_blocked(
    pack: ModuleType, journal_dir: Path, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The paid path: the TLS failure gives the intent back; the re-queue (now pointed at a good
    server) submits once instead of stopping with "may have been paid" until force_rerun."""
    context, _cert = self_signed_tls(tmp_path)
    server = RawServer(tls=context)
    monkeypatch.setenv("WAVESPEED_BASE_URL", server.url)
    try:
        first = _generate(pack)
    finally:
        server.stop()
    errors = pack.wavespeed.core.errors  # the pack's own import of wavespeed.core.errors
    assert isinstance(first, errors.ConnectionFailedError), first
    assert not isinstance(first, errors.SubmitUncertainError), first
    monkeypatch.setenv("WAVESPEED_BASE_URL", pack_env.base_url)
    pack.wavespeed.tasks.accounts.forget_clients()
    second = _generate(pack)
    assert not isinstance(second, Exception), second
    assert pack_env.submissions == 1

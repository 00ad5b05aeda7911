"""Issue 17, case 6: a failed submit counts as possibly paid only if request bytes reached the socket.

A TLS failure (an untrusted certificate, a reset during the handshake), a refused connection or a
DNS failure sends nothing: the client says "nothing was sent, nothing charged" (a ServerError with no
status, which the paid path counts as not accepted) and a re-queue is not blocked. A server that read
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
from tests.support.hostile_server import RawServer, ResetServer, fast_client, run_bounded, self_signed_tls

KEY = "not-sent-key-0123456789abcdef"


def submit(base_url: str) -> object:
    with fast_client(base_url, KEY) as client:
        return run_bounded(lambda: client.submit(KontextRequest(prompt="x")), 30.0, "the submit")


def assert_nothing_sent(outcome: object) -> None:
    assert isinstance(outcome, E.ServerError), outcome
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


@pytest.fixture
def fresh_pack(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ModuleType:
    monkeypatch.setenv("WAVESPEED_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.delenv("WAVESPEED_SESSION_BUDGET_USD", raising=False)
    pack.nodes.paid.submission.reset_session_state()
    with pack.nodes.shared.runtime._clients_lock:
        pack.nodes.shared.runtime._clients.clear()
    yield pack
    pack.nodes.paid.submission.reset_session_state()
    with pack.nodes.shared.runtime._clients_lock:
        pack.nodes.shared.runtime._clients.clear()


def _generate(pack: ModuleType) -> object:
    node = pack.nodes.NODES["FluxKontextMaxGenerate"]()
    args = {"seed": 7, "guidance_scale": 3.5, "aspect_ratio": "1:1", "sync_mode": False, "unique_id": "5"}
    try:
        return asyncio.run(node.generate("a fixed-seed prompt", **args))
    except Exception as exc:
        return exc


def test_a_fixed_seed_requeue_after_an_untrusted_certificate_is_not_blocked(
    fresh_pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The paid path: the TLS failure gives the intent back; the re-queue (now pointed at a good
    server) submits once instead of stopping with "may have been paid" until force_rerun."""
    context, _cert = self_signed_tls(tmp_path)
    server = RawServer(tls=context)
    monkeypatch.setenv("WAVESPEED_BASE_URL", server.url)
    try:
        first = _generate(fresh_pack)
    finally:
        server.stop()
    errors = fresh_pack.nodes.paid.submission.E  # the pack's own import of wavespeed.core.errors
    assert isinstance(first, errors.ServerError), first
    assert not isinstance(first, errors.SubmitUncertainError), first
    monkeypatch.setenv("WAVESPEED_BASE_URL", pack_env.base_url)
    with fresh_pack.nodes.shared.runtime._clients_lock:
        fresh_pack.nodes.shared.runtime._clients.clear()
    second = _generate(fresh_pack)
    assert not isinstance(second, Exception), second
    assert pack_env.submissions == 1

"""Issue 11, class 1: the key is never sent in clear, nor anywhere but the configured API origin.

Every refusal is proved to happen before any connection: ``socket.socket.connect`` is patched to
record each attempt (and to refuse any non-loopback address, so no test can reach a network), and
loopback listeners count what they accepted.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.net.client import RetryPolicy, WaveSpeedClient
from wavespeed_kontext_pack.wavespeed.settings.config import Settings, load_settings

from tests.support.hostile_server import RawServer, http_reply

KEY = "hostile-origin-key-123456"


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every socket.connect attempt; a non-loopback one is refused here and never reaches a network."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        host = address[0] if isinstance(address, tuple) else str(address)
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            raise ConnectionRefusedError(f"test guard: refused a connection to {host}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.fixture
def listener() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.stop()


def submit_through(base_url: str) -> None:
    with WaveSpeedClient(KEY, base_url, retry=RetryPolicy(attempts=1)) as client:
        client.submit(KontextRequest(prompt="x"))


def test_backslash_at_url_is_refused_before_any_connection(connects: list[Any], listener: RawServer) -> None:
    """The reported attack: the old guard saw 127.0.0.1, urllib3 connected to the first host."""
    url = f"http://10.255.255.1:{listener.port}\\@127.0.0.1:{listener.port}"
    with pytest.raises(E.ConfigError) as info:
        submit_through(url)
    assert connects == [] and listener.accepted == 0
    assert "\n" not in str(info.value) and KEY not in str(info.value)


def test_userinfo_is_refused_and_the_password_never_shown(connects: list[Any], listener: RawServer) -> None:
    url = f"https://user:s3cret-pass@127.0.0.1:{listener.port}"
    with pytest.raises(E.ConfigError) as info:
        submit_through(url)
    assert connects == [] and listener.accepted == 0
    assert "s3cret-pass" not in str(info.value)
    with pytest.raises(E.ConfigError) as info:
        load_settings({"WAVESPEED_API_KEY": KEY, "WAVESPEED_BASE_URL": url})
    assert "s3cret-pass" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1@10.255.255.1",
        "http://10.255.255.1#@127.0.0.1",
        "http://10.255.255.1?@127.0.0.1",
        "http://%31%32%37.0.0.1:8080",
        "http://127.0.0.1%2f@10.255.255.1",
        "http://[::1%25lo]:8080",
        "http://127.1:8080",
        "http://0x7f.0.0.1:8080",
        "http://2130706433:8080",
        "http:// 127.0.0.1:8080",
        "http://127.0.0.1:80\t80",
        "http://127.0.0.1:8080/\x00",
        "ftp://127.0.0.1",
        "https://",
        "https://:443",
        "https://api.wavespeed.ai/?x=1",
        "https://api.wavespeed.ai/#frag",
        "https://xn--fiq228c.example\u200b",
        "http://10.255.255.1:8080",
        "http://localhost.evil.example",
    ],
)
def test_ambiguous_or_clear_text_base_urls_are_refused(url: str, connects: list[Any]) -> None:
    with pytest.raises(E.ConfigError) as info:
        submit_through(url)
    assert connects == []
    assert "\n" not in str(info.value)


def test_send_time_check_refuses_the_key_to_another_origin(connects: list[Any]) -> None:
    """Even if a caller (or a future bug) builds a request to another host, the adapter refuses
    to send the Authorization header there, before connecting."""
    home, elsewhere = RawServer(), RawServer()
    try:
        with WaveSpeedClient(KEY, home.url) as client:
            with pytest.raises(E.ConfigError):
                client._session.get(elsewhere.url + "/x", headers={"Authorization": f"Bearer {KEY}"})
            with pytest.raises(E.ConfigError):  # same host and port, other scheme
                client._session.get(f"https://127.0.0.1:{home.port}/x", headers={"Authorization": "Bearer x"})
        assert elsewhere.accepted == 0 and home.accepted == 0 and connects == []
    finally:
        home.stop()
        elsewhere.stop()


def test_api_calls_never_follow_a_redirect(connects: list[Any]) -> None:
    target = RawServer()
    bouncer = RawServer(
        lambda conn, req: conn.sendall(http_reply(302, b"", headers={"Location": target.url + "/steal"}))
    )
    try:
        client = WaveSpeedClient(KEY, bouncer.url, retry=RetryPolicy(attempts=1))
        with client, pytest.raises(E.ConfigError) as info:
            client.get_result("abc123")
        assert "redirect" in str(info.value)
        assert target.accepted == 0 and bouncer.accepted == 1
    finally:
        target.stop()
        bouncer.stop()


def test_reprs_never_show_the_key() -> None:
    settings = Settings(api_key=KEY, base_url="https://api.wavespeed.ai")
    with WaveSpeedClient(KEY, "https://api.wavespeed.ai") as client:
        for text in (repr(settings), str(settings), repr(client), str(client)):
            assert KEY not in text

"""Issue 17, property (f): any ``WAVESPEED_BASE_URL`` string is refused with a ConfigError, or the
origin the transport guard lets the key go to is exactly where urllib3 would connect.

"Where urllib3 would connect" is read from urllib3 itself, without connecting: the connection
pool requests picks for the client's real submit URL, and the connection object that pool builds
(``_dns_host`` and ``port`` are what urllib3 hands to ``socket.create_connection``). No DNS lookup
and no connection is made: ``socket.socket.connect`` and ``getaddrinfo`` fail the test if called.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient
from wavespeed_kontext_pack.wavespeed.settings.config import load_settings

KEY = "base-url-property-key-0123456789"

SCHEMES = ["https", "http", "HTTPS", "hTTp", "ftp", "", "https:", "http:/", "ws"]
USERINFO = ["", "user@", "u:p@", "@", "127.0.0.1@", "evil.com:80\\@"]
HOSTS = [
    "127.0.0.1", "localhost", "LOCALHOST", "api.wavespeed.ai", "API.WaveSpeed.AI", "evil.com", "10.0.0.1",
    "127.1", "0x7f.0.0.1", "2130706433", "0177.0.0.1", "127.0.0.1.", "[::1]", "[::ffff:127.0.0.1]",
    "[fe80::1%25eth0]", "[::1", "xn--n3h.com", "a..b", "-a.com", "a_b.com", "%31%32%37.0.0.1", "",
    "127.0.0.1:80:90", "[0:0:0:0:0:0:0:1]", "[::FFFF:7F00:1]", "[::]", "0.0.0.0", "127.000.000.001",
    "LocalHost", "[::1]:80", "[v1.x]", "[::1]]", "1.2.3.4.5", "api.wavespeed.ai\uff0ecom", "api。wavespeed.ai",
]  # fmt: skip
PORTS = ["", ":", ":0", ":1", ":443", ":65535", ":65536", ":080", ":-1", ": 80", ":8080", ":0x50", ":1e3"]
PATHS = ["", "/", "/api", "/a/b/", "//evil.com", "/..", "/%2e%2e", "/a;b", "/a b", "/\u00e9"]
TAILS = ["", "?x=1", "#frag", "\\@evil.com", " ", "\t", "\x00", "\n", "#@evil.com", "?@evil.com"]
NOISE = list("@\\/:?#%[]. \t\n\x00\u3002\uff0e\uff20") + ["\u200b", "\r\n", "%40", "%2f"]


@st.composite
def base_urls(draw: st.DrawFn) -> str:
    url = "".join(
        draw(st.sampled_from(part)) for part in (SCHEMES, ["://"], USERINFO, HOSTS, PORTS, PATHS, TAILS)
    )
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(url)))
        url = url[:at] + draw(st.sampled_from(NOISE)) + url[at:]
    return url


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a connection or DNS lookup was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


def where_urllib3_connects(client: WaveSpeedClient, url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of the socket urllib3 would open for ``url``, read from its own pool."""
    prepared = client._session.prepare_request(requests.Request("POST", url, headers={"X": "1"}))
    adapter = client._session.get_adapter(prepared.url or "")
    pool = adapter.get_connection_with_tls_context(prepared, verify=True)
    conn = pool._new_conn()  # builds the connection object; connecting happens only on send
    return pool.scheme, conn._dns_host, int(conn.port)


@settings(
    max_examples=int(__import__("os").environ.get("HUNT", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(base_urls(), st.text(max_size=60)))
@example("http://evil.com:80\\@127.0.0.1:8080")  # issue 11: a check read 127.0.0.1, urllib3 chose evil
@example("https://[::ffff:127.0.0.1]:8443/api")
@example("https://API.WaveSpeed.AI")
def test_a_base_url_is_refused_or_its_guard_is_where_urllib3_connects(base_url: str) -> None:
    try:
        settings = load_settings({"WAVESPEED_API_KEY": KEY, "WAVESPEED_BASE_URL": base_url})
        client = WaveSpeedClient(settings.api_key, settings.base_url)
    except E.ConfigError as exc:
        assert "\n" not in str(exc) and KEY not in str(exc)
        return
    with client:
        guard = client._session.get_adapter(client.base_url).origin
        url = f"{client.base_url}/api/v3/wavespeed-ai/flux-kontext-max/text-to-image"
        assert guard.allows(url), (base_url, url)
        scheme, host, port = where_urllib3_connects(client, url)
        assert (scheme, host, port) == (guard.scheme, guard.host.strip("[]"), guard.port), base_url
        assert scheme == "https" or guard.is_loopback

"""The route and the trust read from the environment: the proxy requests itself would pick (with
``trust_env`` on) for any environment and URL, except plain http to loopback, which never takes one;
proxy credentials are never shown and are redacted like the key. No connection is made here."""

from __future__ import annotations

import os
from unittest import mock

from hypothesis import given, settings, strategies as st
from requests import PreparedRequest
from requests.utils import resolve_proxies, select_proxy
from urllib3.util import parse_url
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.settings import network
from wavespeed_kontext_pack.wavespeed.settings.origin import is_loopback_host

PROXIES = ["http://proxy.corp:3128", "http://user:Pa55-word!x@10.1.2.3:8080", "proxy.corp:3128"]
HOSTS = ["api.wavespeed.ai", "cdn.wavespeed.ai", "localhost", "127.0.0.1", "10.1.2.3", "example.com"]
NO_PROXY_ITEMS = [
    "localhost",
    ".wavespeed.ai",
    "wavespeed.ai",
    "api.wavespeed.ai:443",
    "127.0.0.0/8",
    "*",
    "cdn",
]
VARIABLES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]


def requests_choice(url: str) -> str | None:
    """The proxy requests' own Session would use for ``url`` with trust_env on."""
    request = PreparedRequest()
    request.prepare(method="GET", url=url)
    return select_proxy(url, resolve_proxies(request, {}, trust_env=True))


environments = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.sampled_from(PROXIES) for name in VARIABLES},
        "NO_PROXY": st.lists(st.sampled_from(NO_PROXY_ITEMS), max_size=3).map(", ".join),
    },
)
urls = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}{port}/api/v3/balance",
    st.sampled_from(["https", "http"]),
    st.sampled_from(HOSTS),
    st.sampled_from(["", ":443", ":8765"]),
)


@settings(max_examples=300, deadline=None)
@given(env=environments, url=urls)
def test_the_route_is_requests_own_but_never_a_proxy_for_plain_http_to_loopback(
    env: dict[str, str], url: str
) -> None:
    with mock.patch.dict(os.environ, env, clear=True):
        ours = network.route(url)
        theirs = requests_choice(url)
    if url.startswith("http://") and is_loopback_host(parse_url(url).host or ""):
        assert ours.proxy is None
        assert ours.bypassed == "plain http to loopback" if theirs else ours.bypassed in ("", "NO_PROXY")
        return
    assert ours.proxy == theirs
    if theirs is not None:
        assert "Pa55-word" not in ours.shown and ours.shown.startswith("http://")
        assert ours.variable in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


def test_proxy_credentials_are_redacted_once_read() -> None:
    with mock.patch.dict(
        os.environ, {"HTTPS_PROXY": "http://artist:S3cret%40Proxy@proxy.corp:3128"}, clear=True
    ):
        way = network.route("https://api.wavespeed.ai")
    assert way.shown == "http://proxy.corp:3128" and way.variable == "HTTPS_PROXY"
    text = E.WaveSpeedError("a server echoed S3cret@Proxy and S3cret%40Proxy and artist:S3cret@Proxy").message
    assert "S3cret" not in text and "Proxy" not in text.replace("***", "")


def test_no_proxy_is_named_as_the_reason_a_proxy_is_not_taken() -> None:
    env = {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".wavespeed.ai"}
    with mock.patch.dict(os.environ, env, clear=True):
        way = network.route("https://api.wavespeed.ai/api/v3/balance")
    assert way.proxy is None and way.bypassed == "NO_PROXY" and way.target == "api.wavespeed.ai:443"


def test_the_ca_variables_are_read_in_order() -> None:
    """REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, SSL_CERT_FILE, SSL_CERT_DIR: the first one set."""
    import certifi

    bundle = certifi.where()
    folder = os.path.dirname(bundle)
    for present, expected in [
        ({"SSL_CERT_DIR": folder, "SSL_CERT_FILE": bundle}, "SSL_CERT_FILE"),
        ({"SSL_CERT_DIR": folder}, "SSL_CERT_DIR"),
        ({"CURL_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle}, "CURL_CA_BUNDLE"),
        ({"REQUESTS_CA_BUNDLE": bundle, "CURL_CA_BUNDLE": "/nowhere"}, "REQUESTS_CA_BUNDLE"),
    ]:
        trust = network.trust_from_env(present)
        assert trust.variable == expected and trust.verify == present[expected]
    default = network.trust_from_env({})
    assert default.variable is None and default.verify is True and default.describe() == network.SYSTEM_TRUST

"""Generate -> Poll Result as an artist behind a company proxy runs it: the environment names the
proxy and the company CA, the nodes do the rest. The run passes through a real proxy (tinyproxy's
log shows the CONNECT, every request the emulator saw came from the proxy) and the proxy's log holds
no key; a proxy that refuses, or a certificate nobody vouches for, is one line and costs nothing,
and once fixed the same fixed-seed run is not blocked as "maybe paid"."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from emulator import Emulator
from tests.support.node_calls import chain, generate, restart_pack
from tests.support.proxy_tls import PROXY_OUT_ADDRESS, TestCA, Tinyproxy, https_base, tls_emulator

KEY = "node-proxy-key-Rk5Tz8Vw2Qm6"
NETWORK_VARIABLES = (
    *("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"),
    *("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"),
)


@pytest.fixture
def company(
    pack: ModuleType, journal_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Emulator, TestCA]]:
    """The API over https with a CA of its own, the pack pointed at it through the environment."""
    for name in NETWORK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    ca = TestCA(tmp_path)
    with tls_emulator(ca, KEY, inference_s=0.2) as emu:
        monkeypatch.setenv("WAVESPEED_API_KEY", KEY)
        monkeypatch.setenv("WAVESPEED_BASE_URL", https_base(emu))
        restart_pack(pack)
        yield emu, ca


def test_generate_and_poll_pass_through_the_proxy_which_never_sees_the_key(
    pack: ModuleType, company: tuple[Emulator, TestCA], proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, ca = company
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    images, urls, request_id, _ms, _nsfw = asyncio.run(chain())
    assert tuple(images.shape)[0] == 1 and urls.startswith("https://localhost:")
    assert emu.submissions == 1 and request_id
    assert {r.route for r in emu.requests} >= {"submit", "result", "download"}
    assert {r.peer for r in emu.requests} == {PROXY_OUT_ADDRESS}
    assert proxy.connects() and set(proxy.connects()) == {f"localhost:{emu.port}"}
    log = proxy.log()
    assert not [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in log]


def test_no_proxy_bypasses_the_proxy_for_the_whole_run(
    pack: ModuleType, company: tuple[Emulator, TestCA], proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, ca = company
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle))
    asyncio.run(chain())
    assert emu.submissions == 1
    assert {r.peer for r in emu.requests} == {"127.0.0.1"} and proxy.connects() == []


def run_generate(pack: ModuleType) -> object:
    try:
        return asyncio.run(generate("a fixed-seed prompt", unique_id="9"))
    except Exception as exc:
        return exc


@pytest.mark.parametrize("fault", ["proxy refuses", "unknown CA"])
def test_a_refusing_proxy_or_unknown_ca_is_one_line_costs_nothing_and_does_not_block_the_rerun(
    pack: ModuleType,
    company: tuple[Emulator, TestCA],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fault: str,
) -> None:
    emu, ca = company
    (tmp_path / "strict").mkdir()
    strict = Tinyproxy(tmp_path / "strict", connect_ports=(443,))
    try:
        if fault == "proxy refuses":
            monkeypatch.setenv("HTTPS_PROXY", strict.url)
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
            expected = f"the proxy {strict.url} (HTTPS_PROXY) answered the CONNECT with 403"
        else:
            expected = "TLS certificate verify failed"
        first = run_generate(pack)
    finally:
        strict.stop()
    errors = pack.wavespeed.core.errors  # the pack's own errors module
    assert isinstance(first, errors.ConnectionFailedError), first
    assert not isinstance(first, errors.SubmitUncertainError), first
    text = str(first)
    assert expected in text and "nothing was sent, nothing charged" in text and "\n" not in text
    assert emu.submissions == 0 and emu.requests == []
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    pack.wavespeed.tasks.accounts.forget_clients()  # a client reads the CA variables when it is made
    second = run_generate(pack)  # the same fixed seed, fixed network: paid once, not "maybe paid"
    assert not isinstance(second, Exception), second
    assert emu.submissions == 1

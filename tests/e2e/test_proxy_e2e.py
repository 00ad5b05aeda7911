"""The pack in a real ComfyUI started as an artist behind a company proxy starts it: HTTPS_PROXY
and REQUESTS_CA_BUNDLE in its environment, the API (the emulator) over https with the company's CA.
A Generate -> Poll Result -> Save run passes through the proxy (tinyproxy), which never sees the
key; when the proxy starts refusing, the run fails in one line naming it and nothing is paid."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import Emulator
from scripts.comfy_harness import ComfyServer, run_prompt
from tests.support.graphs import generate_chain
from tests.support.proxy_tls import PROXY_OUT_ADDRESS, TestCA, Tinyproxy, https_base, tls_emulator

KEY = "e2e-proxy-key-Hs3Nq7Xb5Dv9"
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("company")


@pytest.fixture(scope="module")
def ca(site: Path) -> TestCA:
    return TestCA(site)


@pytest.fixture(scope="module")
def api(ca: TestCA) -> Iterator[Emulator]:
    with tls_emulator(ca, KEY, inference_s=0.3) as emu:
        yield emu


@pytest.fixture(scope="module")
def proxy_port(site: Path) -> Iterator[int]:
    """tinyproxy's port for the module (tests restart a proxy with other rules on it)."""
    first = Tinyproxy(site)
    port = first.port
    first.stop()
    yield port


@pytest.fixture(scope="module")
def comfy_behind_a_proxy(
    comfy_installed: Path, api: Emulator, ca: TestCA, proxy_port: int
) -> Iterator[ComfyServer]:
    env = {
        "WAVESPEED_BASE_URL": https_base(api),
        "WAVESPEED_API_KEY": KEY,
        "HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}",
        "NO_PROXY": "",
        **dict.fromkeys(CA_VARIABLES, ""),
        "REQUESTS_CA_BUNDLE": str(ca.bundle),
    }
    with ComfyServer(env=env, cache_none=True, keep_dir=os.environ.get("COMFY_E2E_KEEP") == "1") as server:
        yield server


def test_a_run_passes_through_the_proxy_which_never_sees_the_key(
    comfy_behind_a_proxy: ComfyServer, api: Emulator, site: Path, proxy_port: int
) -> None:
    (site / "open").mkdir()
    proxy = Tinyproxy(site / "open", port=proxy_port)
    try:
        result = run_prompt(comfy_behind_a_proxy, generate_chain("px", "behind a proxy", force_rerun=True))
    finally:
        proxy.stop()
    assert result.ok, result.error_line()
    assert len(result.images) == 1
    assert api.submissions == 1
    assert {r.route for r in api.requests} >= {"submit", "result", "download"}
    assert {r.peer for r in api.requests} == {PROXY_OUT_ADDRESS}
    assert set(proxy.connects()) == {f"localhost:{api.port}"}
    for text in (proxy.log(), comfy_behind_a_proxy.log_text()):
        assert not [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text]


def test_a_proxy_that_refuses_is_one_line_and_nothing_is_paid(
    comfy_behind_a_proxy: ComfyServer, api: Emulator, site: Path, proxy_port: int
) -> None:
    api.reset()
    (site / "strict").mkdir()
    proxy = Tinyproxy(site / "strict", connect_ports=(443,), port=proxy_port)
    try:
        result = run_prompt(comfy_behind_a_proxy, generate_chain("pr", "refused", force_rerun=True))
    finally:
        proxy.stop()
    assert not result.ok
    line = result.error_line()
    assert f"the proxy http://127.0.0.1:{proxy_port} (HTTPS_PROXY) answered the CONNECT with 403" in line
    assert "nothing was sent, nothing charged" in line
    assert api.submissions == 0 and api.requests == []
    assert proxy.connects() == [f"localhost:{api.port}"]


def test_the_connection_check_node_passes_every_layer_through_the_proxy(
    comfy_behind_a_proxy: ComfyServer, api: Emulator, site: Path, proxy_port: int
) -> None:
    api.reset()
    (site / "check").mkdir()
    proxy = Tinyproxy(site / "check", port=proxy_port)
    try:
        result = run_prompt(
            comfy_behind_a_proxy, {"1": {"class_type": "WaveSpeedConnectionCheck", "inputs": {}}}
        )
    finally:
        proxy.stop()
    assert result.ok, result.error_line()
    shown = [e["data"]["text"] for e in result.events_of("progress_text")]
    assert shown, result.events
    lines = shown[-1].splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["DNS", "ok"], ["proxy", "ok"], ["TLS/CA", "ok"], ["key", "ok"], ["balance", "ok"]
    ]  # fmt: skip
    assert f"http://127.0.0.1:{proxy_port} (HTTPS_PROXY) opened a tunnel" in lines[1]
    assert api.submissions == 0 and {r.peer for r in api.requests} == {PROXY_OUT_ADDRESS}

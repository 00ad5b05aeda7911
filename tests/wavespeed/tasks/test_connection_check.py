"""The connection check: one line per layer, the failing one named with what to do, for each layer
that can fail, and never a cost (no submit; the balance the same before and after).

Real servers only (the emulator over https with a CA trustme makes, Debian's tinyproxy). Name
resolution failures are made inside a network namespace the test creates (``unshare --net``): the
only interface there is loopback, so a lookup sent to the machine's resolver fails at once and no
packet leaves the machine; ``.invalid`` names (RFC 2606) are used as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from wavespeed_kontext_pack.wavespeed.settings import network
from wavespeed_kontext_pack.wavespeed.tasks.connection_check import (
    FAIL,
    LAYERS,
    OK,
    SKIP,
    ConnectionReport,
    check_connection,
)

from emulator import Emulator
from scripts.pack_loader import REPO_ROOT
from tests.support.ci import unavailable
from tests.support.proxy_tls import TestCA, Tinyproxy, free_port, https_base, tls_emulator

KEY = "check-key-Bt4Wn8Kq2Xz6"
NETWORK_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", *network.CA_VARIABLES)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what each test sets: no proxy, no CA bundle, no key file from the machine."""
    for name in (*NETWORK_VARIABLES, "WAVESPEED_API_KEY", "WAVESPEED_BASE_URL", "WAVESPEED_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


@pytest.fixture
def emu(ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with tls_emulator(ca, KEY, balance=12.0) as emu:
        monkeypatch.setenv("WAVESPEED_BASE_URL", https_base(emu))
        monkeypatch.setenv("WAVESPEED_API_KEY", KEY)
        yield emu


def verdicts(checked: ConnectionReport) -> list[str]:
    assert [layer.name for layer in checked.layers] == list(LAYERS)
    assert len(checked.text.splitlines()) == len(LAYERS)
    assert not [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in checked.text]
    found = [layer.verdict for layer in checked.layers]
    assert checked.passed == (FAIL not in found)
    return found


def line(checked: ConnectionReport, name: str) -> str:
    return checked.layer(name).text


def assert_free(emu: Emulator) -> None:
    assert emu.submissions == 0 and emu.balance == 12.0
    assert {r.route for r in emu.requests} <= {"balance"}


def test_every_layer_passes_through_a_proxy_and_it_costs_nothing(
    emu: Emulator, ca: TestCA, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK] * 5
    assert f"{proxy.url} (HTTPS_PROXY) opened a tunnel" in line(layers, "proxy")
    assert "REQUESTS_CA_BUNDLE" in line(layers, "TLS/CA")
    assert line(layers, "balance").startswith("$12.00, enough for 150 images")
    assert_free(emu)
    assert [r.authorization for r in emu.requests] == [False, True]  # the first step sends no key


def test_a_direct_route_says_no_proxy_is_set(
    emu: Emulator, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle))
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, SKIP, OK, OK, OK]
    assert line(layers, "proxy").startswith("none set: direct to localhost:")
    assert "is an address" not in line(layers, "DNS") and "localhost resolves to" in line(layers, "DNS")


def test_a_refusing_proxy_fails_the_proxy_layer(
    emu: Emulator, ca: TestCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "strict").mkdir()
    strict = Tinyproxy(tmp_path / "strict", connect_ports=(443,))
    try:
        monkeypatch.setenv("HTTPS_PROXY", strict.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
        layers = check_connection(timeout_s=5)
    finally:
        strict.stop()
    assert verdicts(layers) == [OK, FAIL, SKIP, SKIP, SKIP]
    assert "answered the CONNECT with 403" in line(layers, "proxy")
    assert "ask its admin to allow" in line(layers, "proxy")
    assert emu.requests == []


def test_a_proxy_where_nothing_listens_fails_the_proxy_layer(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTPS_PROXY", dead)
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, FAIL, SKIP, SKIP, SKIP]
    assert f"nothing listens at the proxy {dead} (HTTPS_PROXY)" in line(layers, "proxy")
    assert "is an address: no lookup needed" in line(layers, "DNS")
    assert emu.requests == []


def test_a_direct_connection_that_is_refused_fails_the_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_BASE_URL", f"https://127.0.0.1:{free_port()}")
    monkeypatch.setenv("WAVESPEED_API_KEY", KEY)
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, FAIL, SKIP, SKIP, SKIP]
    assert line(layers, "proxy").startswith("connection refused: check your network")


def test_an_unknown_ca_fails_the_tls_layer_after_the_proxy_passed(
    emu: Emulator, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, OK, FAIL, SKIP, SKIP]
    text = line(layers, "TLS/CA")
    assert "TLS certificate verify failed" in text and "REQUESTS_CA_BUNDLE" in text
    assert emu.requests == []  # the handshake failed: no request reached the API


def test_an_unreadable_ca_bundle_fails_the_tls_layer(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/company-ca.pem")
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, SKIP, FAIL, SKIP, SKIP]
    assert "REQUESTS_CA_BUNDLE=/nonexistent/company-ca.pem does not exist" in line(layers, "TLS/CA")
    assert line(layers, "proxy") == "not tried (fix TLS/CA first)" and emu.requests == []


def test_a_refused_key_fails_the_key_layer(
    emu: Emulator, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    monkeypatch.setenv("WAVESPEED_API_KEY", "wrong-key-Mf3Hs9Lc5")
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, SKIP, OK, FAIL, SKIP]
    assert line(layers, "key").startswith("refused:")
    assert_free(emu)


def test_no_key_fails_the_key_layer_and_the_route_is_still_checked(
    emu: Emulator, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WAVESPEED_API_KEY")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, SKIP, OK, FAIL, SKIP]
    assert "No WaveSpeed API key found" in line(layers, "key")
    assert [(r.route, r.authorization) for r in emu.requests] == [("balance", False)]


def test_a_balance_below_one_image_fails_the_balance_layer(
    emu: Emulator, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.configure(balance=0.05)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, SKIP, OK, OK, FAIL]
    assert line(layers, "balance") == "$0.05, less than one image ($0.08): top up on wavespeed.ai"
    assert emu.submissions == 0 and emu.balance == 0.05


def test_a_local_emulator_over_http_has_no_tls_layer(
    emulator: Emulator, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVESPEED_BASE_URL", emulator.base_url)
    monkeypatch.setenv("WAVESPEED_API_KEY", api_key)
    layers = check_connection(timeout_s=5)
    assert verdicts(layers) == [OK, SKIP, SKIP, OK, OK]
    assert "no TLS" in line(layers, "TLS/CA")


def in_own_network_namespace(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """scripts/check_connection.py in a network namespace of its own: only loopback, so no lookup
    (or any packet) can leave the machine."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        unavailable("root and unshare are needed for a network namespace of the test's own")
    clean = {
        k: v for k, v in os.environ.items() if k.upper() not in (*NETWORK_VARIABLES, "WAVESPEED_API_KEY")
    }
    command = ["unshare", "--net", sys.executable, str(REPO_ROOT / "scripts" / "check_connection.py")]
    done = subprocess.run(
        [*command, "--timeout", "5"], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )
    if done.returncode not in (0, 1):
        unavailable(f"no network namespace here: {done.stderr.strip()[-300:]}")
    return done


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"WAVESPEED_BASE_URL": "https://api.wavespeed.invalid"}, "api.wavespeed.invalid does not resolve"),
        (
            {"HTTPS_PROXY": "http://proxy.corp.invalid:3128"},
            "the proxy's host proxy.corp.invalid (HTTPS_PROXY) does not resolve",
        ),
    ],
)
def test_a_name_that_does_not_resolve_fails_the_dns_layer(env: dict[str, str], fragment: str) -> None:
    done = in_own_network_namespace({"WAVESPEED_API_KEY": KEY, **env})
    lines = done.stdout.splitlines()
    assert done.returncode == 1 and len(lines) == 5, done.stdout + done.stderr
    assert lines[0].startswith("DNS     FAIL") and fragment in lines[0]
    assert all(other.split()[1] == SKIP and "fix DNS first" in other for other in lines[1:])

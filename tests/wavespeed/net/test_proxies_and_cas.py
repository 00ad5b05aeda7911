"""Behind a proxy, with a company CA: every request the client makes (submit, polls, upload, the
upload check, downloads, balance) takes the environment's proxy, NO_PROXY sends it direct, a proxy
that refuses or a certificate nobody vouches for is one line naming it, and nothing is paid.

Real servers only: Debian's tinyproxy (tests/support/proxy_tls.py), the emulator over https with
a CA trustme makes at test time. tinyproxy connects out from 127.0.0.2, so the emulator's ``peer``
of each request proves which way it came.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poller import submit_and_wait
from wavespeed_kontext_pack.wavespeed.settings import network

from emulator import Emulator
from scripts.pack_loader import REPO_ROOT
from tests.support.ci import unavailable
from tests.support.clients import fast_client
from tests.support.hostile_server import RawServer, http_reply, run_bounded
from tests.support.proxy_tls import PROXY_OUT_ADDRESS, TestCA, Tinyproxy, free_port, https_base, tls_emulator

KEY = "proxy-key-Zq7Wm3Xc9Rv2Tn5B"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def clean_network_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy and no CA bundle from the machine's environment: each test sets its own."""
    for name in (*PROXY_VARIABLES, *network.CA_VARIABLES):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


@pytest.fixture
def emu(ca: TestCA) -> Iterator[Emulator]:
    with tls_emulator(ca, KEY, inference_s=0.2) as emu:
        yield emu


def assert_no_piece_of(secret: str, text: str) -> None:
    """No 8 consecutive characters of ``secret`` in ``text``."""
    assert not [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in text]


def full_run(base_url: str) -> None:
    """Every kind of request the client makes, once at least."""
    with fast_client(base_url, KEY) as client:
        assert client.balance() > 0
        picture = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 120, 40)).save(picture, format="PNG")
        uploaded = client.upload(picture.getvalue())
        assert client.url_is_live(uploaded)
        done = submit_and_wait(client, KontextRequest(prompt="through the proxy"), timeout_s=30)
        assert client.download(done.outputs[0], request_id=done.id)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_every_request_goes_through_the_proxy_which_never_sees_the_key(
    emu: Emulator, ca: TestCA, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    full_run(https_base(emu))
    routes = {r.route for r in emu.requests}
    assert routes == {"balance", "upload", "download", "submit", "result"}, routes
    assert {r.peer for r in emu.requests} == {PROXY_OUT_ADDRESS}  # every one came through the proxy
    assert set(proxy.connects()) == {f"localhost:{emu.port}"}  # a CONNECT, never a plain request
    assert all(r.authorization for r in emu.requests if r.route != "download")
    assert_no_piece_of(KEY, proxy.log())


@pytest.mark.parametrize("no_proxy", ["localhost", ".localhost", "example.com, localhost", "*"])
def test_no_proxy_sends_it_direct(
    emu: Emulator, ca: TestCA, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    full_run(https_base(emu))
    assert {r.peer for r in emu.requests} == {"127.0.0.1"}
    assert proxy.connects() == []


def test_plain_http_to_loopback_never_takes_the_proxy(
    emulator: Emulator, api_key: str, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key goes over plain http only to loopback: a proxy would read it in clear."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    with fast_client(emulator.base_url, api_key) as client:
        done = submit_and_wait(client, KontextRequest(prompt="local"), timeout_s=30)
        assert client.download(done.outputs[0], request_id=done.id)
    assert {r.peer for r in emulator.requests} == {"127.0.0.1"}
    assert "Request (file descriptor" not in proxy.log()
    assert network.route(emulator.base_url).bypassed == "plain http to loopback"


def submit_outcome(base_url: str, **kw: object) -> object:
    with fast_client(base_url, KEY, **kw) as client:  # type: ignore[arg-type]
        return run_bounded(lambda: client.submit(KontextRequest(prompt="x")), 60.0, "the submit")


def assert_one_line_nothing_paid(outcome: object, emu: Emulator, *fragments: str) -> str:
    assert isinstance(outcome, E.ConnectionFailedError) and not isinstance(outcome, E.SubmitUncertainError), (
        outcome
    )
    text = str(outcome)
    assert "\n" not in text and len(text) <= E.LINE_LIMIT
    assert "nothing was sent, nothing charged" in text
    for fragment in fragments:
        assert fragment in text, text
    assert emu.submissions == 0 and emu.requests == []
    assert_no_piece_of(KEY, text)
    return text


def test_a_proxy_that_refuses_the_tunnel_is_one_line_and_not_retried(
    emu: Emulator, ca: TestCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = Tinyproxy(tmp_path, connect_ports=(443,))  # our emulator is not on 443: 403
    try:
        monkeypatch.setenv("HTTPS_PROXY", strict.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
        outcome = submit_outcome(https_base(emu))
    finally:
        strict.stop()
    assert_one_line_nothing_paid(outcome, emu, f"the proxy {strict.url} (HTTPS_PROXY) answered", "403")
    assert strict.connects() == [f"localhost:{emu.port}"]  # asked once: no retry changes a refusal


def test_a_proxy_where_nothing_listens_is_one_line_naming_it(
    emu: Emulator, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTPS_PROXY", dead)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    outcome = submit_outcome(https_base(emu))
    assert_one_line_nothing_paid(outcome, emu, f"nothing listens at the proxy {dead}", "fix HTTPS_PROXY")


def test_proxy_credentials_are_used_and_never_shown(
    emu: Emulator,
    ca: TestCA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password, wrong = "Pr0xyPassw0rd-Kq4", "Wr0ngPassw0rd-Jt8"
    guarded = Tinyproxy(tmp_path, login=("artist", password))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    try:
        monkeypatch.setenv("HTTPS_PROXY", guarded.url.replace("://", f"://artist:{wrong}@"))
        with caplog.at_level(logging.DEBUG, logger="wavespeed"):
            refused = submit_outcome(https_base(emu))
        text = assert_one_line_nothing_paid(refused, emu, f"the proxy {guarded.url}", "valid login")
        monkeypatch.setenv("HTTPS_PROXY", guarded.url.replace("://", f"://artist:{password}@"))
        with fast_client(https_base(emu), KEY) as client:
            assert client.balance() > 0  # the login is sent to the proxy, in its CONNECT
    finally:
        guarded.stop()
    for secret in (password, wrong):
        assert_no_piece_of(secret, text + caplog.text)
        assert secret not in E.WaveSpeedError(f"echoed {secret} back").message  # redacted like the key
    assert [r.peer for r in emu.requests] == [PROXY_OUT_ADDRESS]


def test_an_unknown_ca_is_one_line_naming_the_certificate_problem(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = submit_outcome(https_base(emu))
    assert_one_line_nothing_paid(
        outcome, emu, "TLS certificate verify failed", "the system store + certifi", "REQUESTS_CA_BUNDLE"
    )


def test_an_unknown_ca_behind_a_proxy_names_the_certificate_not_the_proxy(
    emu: Emulator, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TLS-inspecting case: the tunnel opens, the certificate inside it is not trusted."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    outcome = submit_outcome(https_base(emu))
    text = assert_one_line_nothing_paid(outcome, emu, "TLS certificate verify failed")
    assert "proxy" not in text
    assert proxy.connects() == [f"localhost:{emu.port}"]


def hashed_ca_dir(ca: TestCA, directory: Path) -> Path:
    """A c_rehash-style folder holding the CA (what SSL_CERT_DIR names)."""
    folder = directory / "certs"
    folder.mkdir()
    try:
        digest = subprocess.run(
            ["openssl", "x509", "-hash", "-noout", "-in", str(ca.bundle)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except FileNotFoundError:
        pytest.skip("openssl CLI not installed")
    (folder / f"{digest}.0").write_bytes(ca.bundle.read_bytes())
    return folder


@pytest.mark.parametrize("variable", network.CA_VARIABLES)
def test_a_ca_named_by_each_variable_is_trusted(
    emu: Emulator, ca: TestCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    path = hashed_ca_dir(ca, tmp_path) if variable == "SSL_CERT_DIR" else ca.bundle
    monkeypatch.setenv(variable, str(path))
    with fast_client(https_base(emu), KEY) as client:
        assert client.balance() > 0
        assert client.trust.describe() == variable


def test_a_named_bundle_replaces_the_default_and_the_first_variable_wins(
    emu: Emulator, ca: TestCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "other").mkdir()
    other = TestCA(tmp_path / "other")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other.bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle))  # would be trusted, but comes second
    outcome = submit_outcome(https_base(emu))
    assert_one_line_nothing_paid(outcome, emu, "TLS certificate verify failed", "trusting REQUESTS_CA_BUNDLE")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "does not exist"), (b"not a certificate\n", "holds no readable PEM certificate")],
)
def test_a_bundle_that_cannot_be_read_is_refused_before_any_request(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None, fragment: str
) -> None:
    bundle = tmp_path / "company-ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with pytest.raises(E.ConfigError) as info:
        fast_client(https_base(emu), KEY)
    assert fragment in str(info.value) and "REQUESTS_CA_BUNDLE" in str(info.value)
    assert "\n" not in str(info.value)
    assert emu.requests == []


SYSTEM_STORE_CLIENT = """
import sys
from scripts.pack_loader import load_pack
load_pack()
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient
client = WaveSpeedClient(sys.argv[1], sys.argv[2])
print(client.trust.describe(), client.balance())
"""


def test_with_no_bundle_named_the_system_trust_store_is_trusted(
    emu: Emulator, ca: TestCA, tmp_path: Path
) -> None:
    """A company CA installed in the OS store is trusted with no variable set (truststore): a
    client in a private mount namespace, where the OS CA file holds the test CA, reaches the
    emulator, which test_an_unknown_ca_is_one_line... shows certifi alone refuses."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        unavailable("root and unshare are needed to give a client its own OS trust store")
    system_file = os.path.realpath(ssl.get_default_verify_paths().openssl_cafile)
    env = {k: v for k, v in os.environ.items() if k.upper() not in (*PROXY_VARIABLES, *network.CA_VARIABLES)}
    script = f'mount --bind "$1" "{system_file}" && shift && exec "$@"'
    command = ["unshare", "--mount", "sh", "-c", script, "sh", str(ca.bundle)]
    command += [sys.executable, "-c", SYSTEM_STORE_CLIENT, KEY, https_base(emu)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT)
    if done.returncode and "unshare" in done.stderr and "Operation not permitted" in done.stderr:
        unavailable(f"no mount namespace here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "100.0" and network.SYSTEM_TRUST in done.stdout
    assert [r.route for r in emu.requests] == ["balance"]
    with open(system_file, encoding="ascii") as outside:  # the namespace's mount stayed inside it
        assert ca.bundle.read_text(encoding="ascii") not in outside.read()


def test_a_deadline_holds_inside_a_proxy_tunnel(
    emu: Emulator, ca: TestCA, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog shuts the socket to the proxy: a dribbling reply inside the tunnel ends by the
    caller's deadline (the bound is a hang detector, not a speed assertion)."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    with fast_client(https_base(emu), KEY, attempts=2, connect_timeout_s=1.0, read_timeout_s=1.0) as client:
        task = client.submit(KontextRequest(prompt="dribble"))
        emu.inject("result", "dribble", delay_s=0.2, times=20)
        outcome = run_bounded(lambda: client.get_result(task.id, deadline=time.monotonic() + 1.5), 1.5 + 4.0)
    assert isinstance(outcome, E.WaitTimeoutError), outcome
    assert task.id in str(outcome)
    assert {r.peer for r in emu.requests} == {PROXY_OUT_ADDRESS}


def test_a_proxy_that_stalls_the_connect_sent_nothing(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy that reads the CONNECT and answers one byte at a time: the window ends it, and the
    CONNECT bytes (to the proxy, not to WaveSpeed) do not count as a sent submit."""

    def dribble(conn: object, request: bytes) -> None:
        for byte in b"HTTP/1.1 200 Connection established\r\n\r\n":
            conn.sendall(bytes([byte]))  # type: ignore[attr-defined]
            time.sleep(0.3)

    stalling = RawServer(dribble)
    try:
        monkeypatch.setenv("HTTPS_PROXY", stalling.url)
        outcome = submit_outcome(https_base(emu), attempts=1, connect_timeout_s=1.0, read_timeout_s=1.0)
    finally:
        stalling.stop()
    assert_one_line_nothing_paid(outcome, emu, f"connect timeout through the proxy {stalling.url}")
    assert stalling.requests and stalling.requests[0].startswith(b"CONNECT localhost:")


def test_netrc_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests with trust_env would add a Basic login from ~/.netrc to a download: the pack reads
    proxies and CAs explicitly and never that file."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login artist password NetrcS3cretValue\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    server = RawServer(lambda conn, request: conn.sendall(http_reply(200, b"image bytes")))
    try:
        with fast_client("http://127.0.0.1:1", KEY) as client:
            assert client.download(f"{server.url}/out.png") == b"image bytes"
    finally:
        server.stop()
    assert len(server.requests) == 1 and b"authorization" not in server.requests[0].lower()


def test_cancel_frees_the_worker_inside_a_proxy_tunnel(
    emu: Emulator, ca: TestCA, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel pressed while a poll waits on a slow reply inside the tunnel: the watchdog shuts the
    socket to the proxy and the call ends (event order: the reply was never sent)."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    pressed = threading.Event()
    with fast_client(https_base(emu), KEY) as client:
        task = client.submit(KontextRequest(prompt="slow"))
        emu.inject("result", "slow", delay_s=30.0)
        threading.Timer(0.5, pressed.set).start()
        outcome = run_bounded(lambda: client.get_result(task.id, cancel=pressed.is_set), 15.0)
    assert isinstance(outcome, E.CancelledError), outcome
    polls = [r for r in emu.requests if r.route == "result"]
    assert len(polls) == 1 and polls[0].status == 0 and polls[0].peer == PROXY_OUT_ADDRESS

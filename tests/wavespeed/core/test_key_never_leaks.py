"""The API key never leaks: not into logs (ours or urllib3's), errors, reprs or tracebacks, and never
onto an output download (CDN) request. Real sockets against the emulator throughout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import requests
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.models import model_for
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poller import submit_and_wait, wait_for
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient
from wavespeed_kontext_pack.wavespeed.settings.config import Settings, load_settings

from emulator import Emulator
from tests.support.clients import fast_client
from tests.support.hostile_server import RawServer, Script, http_reply
from tests.support.key_pieces import every_byte, leaks
from tests.support.node_calls import call, capture_status, generate, restart_pack
from tests.support.threads import run_in_threads

MODEL_EDIT = model_for("edit").id

T2I_PATH = "/api/v3/wavespeed-ai/flux-kontext-max/text-to-image"
WRONG_KEY = "wrong-key-ZZZZ-5555-leakcheck"


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Everything an exception could show: str, repr, args, attributes, the printed traceback, and
    the same for every chained cause/context (even suppressed ones a debugger would show)."""
    yield "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    seen: set[int] = set()
    current: BaseException | None = exc
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(vars(current))
        stack += [c for c in (current.__cause__, current.__context__) if c is not None]


def test_faulty_session_never_shows_the_key(
    emulator: Emulator, api_key: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "wavespeed"):
        caplog.set_level(logging.DEBUG, logger=name)
    caught: list[BaseException] = []

    def attempt(action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # every kind counts, not only ours
            caught.append(exc)

    echo = f"invalid API key {api_key} (Bearer {api_key})"

    # Guard: the emulator really sends the key back, so the assertions below can fail.
    emulator.inject("submit", "status", status=401, message=echo, times=2)
    raw = requests.post(emulator.base_url + T2I_PATH, json={"prompt": "x"}, timeout=5)
    assert raw.status_code == 401 and api_key in raw.text

    with fast_client(emulator.base_url, api_key, attempts=6) as client:
        req = KontextRequest(prompt="a key-safety test")
        attempt(lambda: client.submit(req))  # 401 echoing the key
        assert isinstance(caught[-1], E.AuthenticationError) and "***" in str(caught[-1])

        # Five faults on polls, retried and logged: one per task, so the five retries (each 2 s
        # after its task's failed check: WaveSpeed's pace) run side by side.
        firsts = [client.submit(req) for _ in range(5)]
        emulator.inject("result", "status", status=500, message=echo, times=2)
        emulator.inject("result", "reset")
        emulator.inject("result", "malformed")
        emulator.inject("result", "html", status=502, message=echo)
        done, errors = run_in_threads(lambda i: wait_for(client, firsts[i].id, timeout_s=15.0), 5, join_s=30)
        assert errors == [] and all(p.is_completed for p in done) and emulator.pending_faults == 0

    with fast_client(emulator.base_url, api_key, attempts=2) as short:
        emulator.inject("result", "status", status=503, message=echo, times=2)  # the whole budget
        attempt(lambda: short.get_result(firsts[0].id))
        assert isinstance(caught[-1], E.ServerError) and "***" in str(caught[-1])
        emulator.inject("result", "reset", times=2)  # a connection that breaks: its own type
        attempt(lambda: short.get_result(firsts[0].id))
        assert isinstance(caught[-1], E.ConnectionFailedError)
        assert emulator.pending_faults == 0

    with fast_client(emulator.base_url, api_key, attempts=6) as client:
        emulator.inject("submit", "reset")
        attempt(lambda: client.submit(req))
        emulator.inject("submit", "status", status=500, message=echo)
        attempt(lambda: client.submit(req))
        emulator.inject("submit", "malformed")
        attempt(lambda: client.submit(req))
        emulator.inject("submit", "status", status=402, message=echo)
        attempt(lambda: client.submit(req))

        emulator.next_tasks(fail=f"task failed for {api_key}", fail_code=1403)
        attempt(lambda: submit_and_wait(client, req, timeout_s=5.0))
        assert isinstance(caught[-1], E.TaskFailedError) and "***" in str(caught[-1])

        emulator.next_tasks(never_finish=True)
        attempt(lambda: submit_and_wait(client, req, timeout_s=0.3))

        done = submit_and_wait(client, req, timeout_s=5.0)
        emulator.inject("download", "truncate", times=10)
        attempt(lambda: client.download(done.outputs[0]))
        attempt(lambda: client.get_result(f"bad id {api_key}"))

    with fast_client(emulator.base_url, api_key, attempts=6, read_timeout_s=0.2) as slow_client:
        emulator.inject("submit", "slow", delay_s=0.5)
        attempt(lambda: slow_client.submit(req))  # read timeout -> SubmitUncertainError

    with fast_client(emulator.base_url, WRONG_KEY, attempts=6) as wrong:
        attempt(lambda: wrong.submit(req))
        attempt(lambda: wrong.balance())

    kinds = {type(e).__name__ for e in caught}
    assert {
        "AuthenticationError",
        "ConnectionFailedError",
        "ServerError",
        "SubmitUncertainError",
        "InsufficientBalanceError",
        "TaskFailedError",
        "WaitTimeoutError",
        "DownloadError",
        "InvalidRequestError",
    } <= kinds, kinds

    # The capture really captured: urllib3's DEBUG lines and our retry warnings are there.
    assert any(r.name.startswith("urllib3") and r.levelno == logging.DEBUG for r in caplog.records)
    warnings = [r for r in caplog.records if r.name == "wavespeed" and r.levelno == logging.WARNING]
    assert warnings
    # Retry warnings carry only a short reason now; the redacting filter is still the last line of
    # defence for any line that would quote a server message: prove it scrubs one.
    logging.getLogger("wavespeed").warning("server said: %s", echo)
    assert "***" in caplog.records[-1].getMessage() and api_key not in caplog.records[-1].getMessage()

    secrets = (api_key, WRONG_KEY)
    for record in caplog.records:
        for text in (record.getMessage(), str(record.msg), repr(record.args), record.exc_text or ""):
            for secret in secrets:
                assert secret not in text, f"key in a {record.name} log record: {text!r}"
    for secret in secrets:
        assert secret not in caplog.text
    for exc in caught:
        for text in exception_texts(exc):
            for secret in secrets:
                assert secret not in text, f"key in {type(exc).__name__}: {text!r}"
        if isinstance(exc, E.WaveSpeedError):
            assert "\n" not in str(exc)
    out, err = capfd.readouterr()
    for secret in secrets:
        assert secret not in out and secret not in err


def test_settings_and_client_reprs_hide_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: Emulator, api_key: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WAVESPEED_CONFIG_FILE", raising=False)
    monkeypatch.setenv("WAVESPEED_API_KEY", api_key)
    monkeypatch.setenv("WAVESPEED_BASE_URL", emulator.base_url)
    settings = load_settings()
    assert settings.api_key == api_key  # the key is there ...
    for text in (repr(settings), str(settings), f"{settings}", repr([settings]), repr({"s": settings})):
        assert api_key not in text  # ... but never shown
    assert emulator.base_url in repr(settings)
    assert api_key not in repr(Settings(api_key=api_key))

    with WaveSpeedClient.from_env() as client:
        for text in (repr(client), str(client), f"{client!r}", repr([client])):
            assert api_key not in text
        assert emulator.base_url in repr(client)
        assert "Authorization" not in client._session.headers  # added per API request only


def test_redaction_of_registered_secrets() -> None:
    E.register_secret("reg-secret-0000-abcdef")
    exc = E.ServerError("server said: reg-secret-0000-abcdef\nand more")
    assert str(exc) == "server said: *** and more"
    assert "reg-secret" not in repr(exc)
    assert E.redact("x reg-secret-0000-abcdef y") == "x *** y"


def test_downloads_never_carry_the_authorization_header(emulator: Emulator, api_key: str) -> None:
    with fast_client(emulator.base_url, api_key, attempts=6) as client:
        done = submit_and_wait(client, KontextRequest(prompt="outputs"), timeout_s=5.0)
        source = client.download(done.outputs[0])
        url = client.upload(source, filename="s.jpg", content_type="image/jpeg")
        client.download(url)  # uploaded media are served from the same store, still no key
        edited = submit_and_wait(
            client, KontextRequest(prompt="edit", model=MODEL_EDIT, image=url), timeout_s=5.0
        )
        emulator.inject("download", "truncate")  # the retried download must not add it either
        client.download(edited.outputs[0])
        sync = client.submit(KontextRequest(prompt="sync", enable_sync_mode=True))
        client.download(sync.outputs[0])
        client.balance()

    recs = emulator.requests
    downloads = [r for r in recs if r.route == "download"]
    api = [r for r in recs if r.route != "download"]
    assert len(downloads) == 5, [(r.route, r.path) for r in recs]
    assert all(not r.authorization for r in downloads), [(r.path, r.authorization) for r in downloads]
    assert {r.route for r in api} == {"submit", "result", "upload", "balance"}
    assert all(r.authorization for r in api), [(r.route, r.authorization) for r in api]


def test_a_logged_traceback_holding_the_key_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """The filter redacted the message only: an exception logged with its traceback (a library's
    error quoting a header, a base64 blob) printed the key. It renders and redacts the traceback."""
    key = "traceback-key-Zq8Wm3Xv5Rt7"
    E.register_secret(key)
    blob = base64.b64encode(f"user:{key}".encode()).decode()
    log = logging.getLogger("wavespeed")
    caplog.set_level(logging.INFO, logger="wavespeed")
    try:
        raise ValueError(f"header Authorization: Basic {blob} (raw {key})")
    except ValueError:
        log.exception("the reply could not be read")
    log.info("stack", stack_info=True)
    (record, _) = caplog.records[-2:]
    assert record.exc_text and "ValueError" in record.exc_text and "***" in record.exc_text
    assert not leaks(caplog.text, key), caplog.text


# --------------------------------------------------------------------------- issue 26, case 5

LIVE_LIKE_KEY = "sk-live-7Q2mX9vK4pL8rT1nB6cY3hJ5"


def test_a_header_line_holding_the_key_is_redacted_in_urllib3s_warning(
    raw_server: Callable[[Script], RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A reply header line urllib3 cannot parse (no colon) is logged by urllib3.connection at
    WARNING, the unparsed lines and a traceback with it: main's filter sat on the pack's logger only,
    so the key (raw, and percent-encoded byte for byte) reached the console."""
    encoded = every_byte(LIVE_LIKE_KEY, "mixed")
    reply = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"X-Echo {LIVE_LIKE_KEY} {encoded}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    ).encode()
    server = raw_server(lambda conn, request: conn.sendall(reply))
    caplog.set_level(logging.DEBUG)
    with fast_client(server.url, LIVE_LIKE_KEY, attempts=1) as client, contextlib.suppress(E.WaveSpeedError):
        client.balance()
    warned = [r for r in caplog.records if r.name.startswith("urllib3") and r.levelno == logging.WARNING]
    assert warned, "urllib3 logged no header warning: the test would prove nothing"
    assert any("***" in r.getMessage() for r in warned)
    assert not leaks(caplog.text, LIVE_LIKE_KEY), caplog.text


def test_a_task_id_that_is_the_key_is_never_stored_nor_shown(
    pack: ModuleType,
    raw_server: Callable[[Script], RawServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hostile API names the key itself as the task id: main journaled it raw and showed it in
    the node's output. It is no task id: the submit is uncertain (never resent, nothing kept under
    that id), a pasted copy is refused before anything is sent, and the key is in no file."""
    body = json.dumps({"code": 200, "message": "ok", "data": {"id": LIVE_LIKE_KEY, "status": "created"}})
    server = raw_server(lambda conn, request: conn.sendall(http_reply(200, body.encode())))
    journal_dir = tmp_path / "journal"
    monkeypatch.setenv("WAVESPEED_API_KEY", LIVE_LIKE_KEY)
    monkeypatch.setenv("WAVESPEED_BASE_URL", server.url)
    monkeypatch.setenv("WAVESPEED_JOURNAL_DIR", str(journal_dir))
    monkeypatch.setenv("HOME", str(tmp_path))
    restart_pack(pack)
    shown = capture_status(pack, monkeypatch)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(pack.wavespeed.core.errors.WaveSpeedError) as submitted:
        asyncio.run(generate("a hostile reply", seed=3))
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError) as pasted:
        asyncio.run(call("WaveSpeedPollResult", 60, "pass through", request_id=LIVE_LIKE_KEY))
    restart_pack(pack)
    assert len(server.requests) == 1  # the submit; the pasted id was refused before any request
    texts = [str(submitted.value), str(pasted.value), *shown, caplog.text]
    files = [p.read_bytes().decode("latin-1") for p in journal_dir.rglob("*") if p.is_file()]
    assert files, "no journal file was written: the test would prove nothing"
    for text in texts + files:
        assert not leaks(text, LIVE_LIKE_KEY), text


@pytest.mark.parametrize("case", ["upper", "lower", "mixed"])
def test_the_live_probes_report_holds_no_percent_encoded_key(case: str) -> None:
    """Main's report showed the key percent-encoded byte for byte whole (a server echoing a URL)."""
    from scripts import live_probe

    echoed = f"https://api.example/x?key={every_byte(LIVE_LIKE_KEY, case)}"
    report = live_probe.redacted({"seen": {"echo": echoed, "url": echoed.replace("%", "%25")}}, LIVE_LIKE_KEY)
    assert "***" in report and not leaks(report, LIVE_LIKE_KEY), report

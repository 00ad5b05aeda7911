"""Issue 11, class 2: wall-clock deadlines that hold against a server that dribbles its reply.

requests' timeout bounds each socket read, so one byte every 0.2 s never trips a 1 s read timeout.
Each test runs the call in a thread and joins it with a bound of (deadline + one request window +
slack): on a client without a wall-clock window the thread is still reading when the bound passes.
The bound is a hang detector, not a speed assertion.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import CHECK_GAP_S, KontextRequest
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.limits.poller import submit_and_wait, wait_for
from wavespeed_kontext_pack.wavespeed.net import transport
from wavespeed_kontext_pack.wavespeed.net.client import RetryPolicy, WaveSpeedClient

from emulator import Emulator
from tests.support.clients import fast_client
from tests.support.hostile_server import (
    RawServer,
    http_reply,
    run_bounded as shared_run_bounded,
    self_signed_tls,
)
from tests.support.node_calls import call

BYTE_EVERY_S = 0.2  # a ~300-byte reply takes a minute: far past every bound below
SLACK_S = 2.0
# one-second socket timeouts and two attempts: the bounds below are computed from them
WALL_CLOCK_OPTIONS: dict[str, Any] = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, "attempts": 2}


@pytest.fixture
def client_options() -> dict[str, Any]:
    return WALL_CLOCK_OPTIONS


def run_bounded(fn: Callable[[], object], bound_s: float) -> BaseException | object:
    """Run fn in a thread; fail if it is still running after bound_s; return its result or error."""
    return shared_run_bounded(fn, bound_s, "the call (dribbling reply)")


def test_wait_on_a_dribbling_result_ends_by_its_timeout(emulator: Emulator, client: WaveSpeedClient) -> None:
    task = client.submit(KontextRequest(prompt="dribble"))
    emulator.inject("result", "dribble", delay_s=BYTE_EVERY_S, times=50)
    timeout_s = 2.0
    outcome = run_bounded(
        lambda: wait_for(client, task.id, timeout_s=timeout_s), timeout_s + client.read_timeout_s + SLACK_S
    )
    assert isinstance(outcome, E.WaitTimeoutError), outcome
    assert outcome.request_id == task.id and task.id in str(outcome)


def test_a_dribbling_poll_without_deadline_is_cut_at_the_request_cap(
    emulator: Emulator, api_key: str
) -> None:
    with fast_client(emulator.base_url, api_key, **WALL_CLOCK_OPTIONS, request_cap_s=1.0) as client:
        task = client.submit(KontextRequest(prompt="dribble"))
        emulator.inject("result", "dribble", delay_s=BYTE_EVERY_S, times=5)
        # two tries, each cut at the 1 s cap, the retry 2 s after the first ended (WaveSpeed's pace)
        outcome = run_bounded(lambda: client.get_result(task.id), 2 * 1.0 + CHECK_GAP_S + SLACK_S)
    assert isinstance(outcome, E.ConnectionFailedError) and "within 1 s" in str(outcome), outcome


def test_a_dribbling_download_ends_by_its_deadline(emulator: Emulator, client: WaveSpeedClient) -> None:
    done = submit_and_wait(client, KontextRequest(prompt="to download"), timeout_s=10)
    emulator.inject("download", "dribble", delay_s=BYTE_EVERY_S, times=10)
    outcome = run_bounded(
        lambda: client.download(done.outputs[0], deadline=time.monotonic() + 1.5), 1.5 + SLACK_S
    )
    assert isinstance(outcome, E.WaitTimeoutError), outcome


def test_a_dribbling_download_without_deadline_is_cut_at_its_cap(emulator: Emulator, api_key: str) -> None:
    with fast_client(emulator.base_url, api_key, **WALL_CLOCK_OPTIONS, download_cap_s=1.0) as client:
        done = submit_and_wait(client, KontextRequest(prompt="to download"), timeout_s=10)
        emulator.inject("download", "dribble", delay_s=BYTE_EVERY_S, times=10)
        outcome = run_bounded(lambda: client.download(done.outputs[0]), 2 * 1.0 + SLACK_S)
    assert isinstance(outcome, E.DownloadError) and "within 1 s" in str(outcome), outcome


def test_cancel_frees_a_worker_stuck_in_a_dribbling_read(emulator: Emulator, client: WaveSpeedClient) -> None:
    task = client.submit(KontextRequest(prompt="cancel me"))
    emulator.inject("result", "dribble", delay_s=BYTE_EVERY_S, times=50)
    stop = threading.Event()
    out: list[BaseException] = []

    def poll() -> None:
        try:
            wait_for(client, task.id, timeout_s=60.0, cancel=stop.is_set)
        except BaseException as exc:
            out.append(exc)

    worker = threading.Thread(target=poll, daemon=True)
    worker.start()
    while not any(r.route == "result" for r in emulator.requests):  # the read has started
        time.sleep(0.02)
    time.sleep(0.3)
    stop.set()
    worker.join(transport.WATCH_INTERVAL_S + SLACK_S)
    assert not worker.is_alive(), "Cancel did not free the worker blocked in a socket read"
    assert isinstance(out[0], E.CancelledError) and out[0].request_id == task.id


def test_a_dribbling_submit_reply_is_uncertain_and_never_resent(emulator: Emulator, api_key: str) -> None:
    with fast_client(emulator.base_url, api_key, **WALL_CLOCK_OPTIONS, request_cap_s=1.0) as client:
        emulator.inject("submit", "dribble", delay_s=BYTE_EVERY_S)
        outcome = run_bounded(lambda: client.submit(KontextRequest(prompt="slow reply")), 1.0 + SLACK_S)
    assert isinstance(outcome, E.SubmitUncertainError), outcome
    assert "within 1 s" in str(outcome)
    assert emulator.submissions == 1
    assert sum(r.route == "submit" for r in emulator.requests) == 1


def test_cancel_does_not_cut_a_submit_whose_body_was_sent(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    """A paid task id must reach the caller: Cancel is checked before the POST, not during it."""
    emulator.inject("submit", "slow", delay_s=0.5)
    cancelled = threading.Event()
    threading.Timer(0.2, cancelled.set).start()
    prediction = client.submit(KontextRequest(prompt="paid"), cancel=cancelled.is_set)
    assert prediction.id and emulator.submissions == 1


def test_windows_are_closed_after_each_call(emulator: Emulator, client: WaveSpeedClient) -> None:
    submit_and_wait(client, KontextRequest(prompt="tidy"), timeout_s=10)
    assert transport.WATCHDOG.open_guards() == 0


def test_cancel_in_poll_result_frees_the_pool_worker(pack: ModuleType, pack_env: Emulator) -> None:
    """Through the node: Cancel ends the prompt at once (as before) AND the pool thread that was
    blocked in the dribbling read comes back (before, it stayed until the reply was complete)."""
    bridge = pack.nodes.shared.comfy_bridge
    watchdog = importlib.import_module(f"{pack.__name__}.wavespeed.net.transport").WATCHDOG

    async def scenario() -> BaseException | None:
        task, _ = await call(
            "FluxKontextMaxGenerate",
            "cancel me",
            seed=3,
            guidance_scale=3.5,
            aspect_ratio="1:1",
            sync_mode=False,
        )
        pack_env.inject("result", "dribble", delay_s=BYTE_EVERY_S, times=50)
        waiting = asyncio.ensure_future(call("WaveSpeedPollResult", 600, "pass through", task=task))
        while not any(r.route == "result" for r in pack_env.requests):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert watchdog.open_guards() == 1  # the worker is inside the dribbling read
        bridge.request_interrupt()
        try:
            await asyncio.wait_for(waiting, timeout=5)
        except BaseException as exc:  # noqa: BLE001 - the exception is what we check
            return exc
        return None

    try:
        exc = asyncio.run(scenario())
    finally:
        bridge.clear_interrupt()
    assert isinstance(exc, pack.wavespeed.core.errors.CancelledError)
    end = time.monotonic() + transport.WATCH_INTERVAL_S + SLACK_S
    while watchdog.open_guards() and time.monotonic() < end:
        time.sleep(0.02)
    assert watchdog.open_guards() == 0, "the pool worker is still blocked in the read after Cancel"


def _dribble(conn: socket.socket, _: bytes) -> None:
    for byte in http_reply(200, b'{"code":200,"data":{"id":"abc","status":"processing"}}'):
        conn.sendall(bytes([byte]))
        time.sleep(BYTE_EVERY_S)


def test_https_dribble_is_cut_too(tmp_path: Path) -> None:
    """The production path: the watchdog must reach the TLS socket that replaced the raw one."""
    context, cert = self_signed_tls(tmp_path)
    server = RawServer(_dribble, tls=context)
    try:
        client = WaveSpeedClient(
            "tls-key-0123456789", server.url, request_cap_s=1.0, retry=RetryPolicy(attempts=1)
        )
        client._session.verify = str(cert)
        with client:
            outcome = run_bounded(lambda: client.get_result("abc"), 1.0 + SLACK_S)
    finally:
        server.stop()
    assert isinstance(outcome, E.ConnectionFailedError) and "within 1 s" in str(outcome), outcome
    assert server.accepted == 1

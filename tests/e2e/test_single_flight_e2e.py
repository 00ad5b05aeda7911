"""Single-flight in real ComfyUI 0.3.75 processes: identical fixed-seed submits pay once within one
prompt, across two servers sharing one journal directory, and after a kill -9 mid sync-submit.

Two servers for the module (each start costs 15-30 s here), both pointed at the session emulator
and at one WAVESPEED_JOURNAL_DIR; the kill test kills and restarts the second one."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from scripts.comfy_harness import ComfyServer, PromptResult, run_prompt
from tests.support.graphs import generate_chain

from .conftest import E2E_API_KEY, running

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def shared_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared-journal")


def _server(emu: Emulator, journal: Path) -> ComfyServer:
    env = {
        "WAVESPEED_BASE_URL": emu.base_url,
        "WAVESPEED_API_KEY": E2E_API_KEY,
        "WAVESPEED_JOURNAL_DIR": str(journal),
    }
    return ComfyServer(env=env, cache_none=True)


@pytest.fixture(scope="module")
def two_servers(
    comfy_installed: Path, e2e_emulator: Emulator, shared_journal: Path
) -> Iterator[list[ComfyServer]]:
    with running([_server(e2e_emulator, shared_journal) for _ in range(2)]) as servers:
        yield servers


def _statuses(result: PromptResult) -> list[str]:
    return [str((e.get("data") or {}).get("text") or "") for e in result.events_of("progress_text")]


def test_two_identical_chains_in_one_prompt_pay_once(
    two_servers: list[ComfyServer], wavespeed_emulator: Emulator
) -> None:
    wavespeed_emulator.configure(inference_s=1.0)
    prompt = {
        **generate_chain("a", "e2e twins in one prompt", seed=101),
        **generate_chain("b", "e2e twins in one prompt", seed=101),
    }
    result = run_prompt(two_servers[0], prompt)
    assert result.ok, result.error_line()
    assert len(result.images) == 2
    assert wavespeed_emulator.submissions == 1
    assert any("with an identical node (no charge)" in s for s in _statuses(result)), _statuses(result)


def test_two_servers_sharing_a_journal_pay_once(
    two_servers: list[ComfyServer], wavespeed_emulator: Emulator
) -> None:
    wavespeed_emulator.configure(inference_s=2.0)
    prompt = generate_chain("r", "e2e race between two ComfyUIs", seed=202, sync_mode=True)
    results: list[PromptResult | BaseException] = [RuntimeError("not run")] * 2
    go = threading.Barrier(2)

    def queue(i: int) -> None:
        go.wait()
        try:
            results[i] = run_prompt(two_servers[i], prompt)
        except BaseException as exc:  # reported by the asserts below
            results[i] = exc

    threads = [threading.Thread(target=queue, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(200)
    done = [r for r in results if isinstance(r, PromptResult)]
    assert len(done) == 2, results
    assert all(r.ok for r in done), [r.error_line() for r in done]
    assert wavespeed_emulator.submissions == 1


# How the history and a task's /result echo the request (WAVESPEED_API.md 12.1, 13.2): the evidence's
# default (list items "inputs" only when include_inputs is sent, /result none), /result "inputs"
# with a bare list, then the list carrying "inputs" or "input" always (Go-encoded, /result none),
# then no echo anywhere.
ECHO_MODES: dict[str, dict[str, Any]] = {
    "list-asked": {},
    "list-none-result-inputs": {"history_echo": "none", "result_echo": "inputs"},
    "list-inputs": {"history_echo": "inputs", "result_echo": "none"},
    "list-input": {"history_echo": "input", "result_echo": "none"},
}
NO_ECHO = {"history_echo": "none", "result_echo": "none"}


@pytest.fixture
def echo_mode(wavespeed_emulator: Emulator) -> Iterator[Emulator]:
    """The session emulator, its echo switches put back afterwards (its reset keeps config)."""
    keep = {k: getattr(wavespeed_emulator, k) for k in ("history_echo", "result_echo", "echo_style")}
    try:
        yield wavespeed_emulator
    finally:
        wavespeed_emulator.configure(**keep)


def _kill_during_sync_submit(emu: Emulator, victim: ComfyServer, prompt: dict[str, Any]) -> str:
    """Queue prompt on victim, SIGKILL it once the emulator accepted (charged) the task, restart it."""
    status, body = victim.post_json("/prompt", {"prompt": prompt, "client_id": "kill-test"})
    assert status == 200, body
    deadline = time.monotonic() + 60
    while emu.submissions == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emu.submissions == 1  # accepted and charged, the sync reply not yet sent
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.stop()
    (paid,) = [t.id for t in emu.history()]
    victim.start()  # "restart ComfyUI" with the same journal directory
    return paid


@pytest.mark.parametrize("mode", list(ECHO_MODES))
def test_kill_during_sync_submit_restart_requeue_pays_no_second_time(
    two_servers: list[ComfyServer], echo_mode: Emulator, mode: str
) -> None:
    echo_mode.configure(inference_s=3.0, **ECHO_MODES[mode])
    victim = two_servers[1]
    prompt = generate_chain("k", f"e2e killed during a sync submit ({mode})", seed=303, sync_mode=True)
    paid = _kill_during_sync_submit(echo_mode, victim, prompt)
    again = run_prompt(victim, prompt)
    assert again.ok, again.error_line()
    assert len(again.images) == 1
    assert echo_mode.submissions == 1  # never silently paid again
    texts = _statuses(again)
    assert any(f"found interrupted task {paid[:8]}… in WaveSpeed history (no charge)" in t for t in texts), (
        texts
    )


def test_kill_during_sync_submit_without_any_echo_names_the_candidate_and_pays_nothing(
    two_servers: list[ComfyServer], echo_mode: Emulator
) -> None:
    echo_mode.configure(inference_s=3.0, **NO_ECHO)
    victim = two_servers[1]
    prompt = generate_chain("n", "e2e killed, nothing echoed", seed=304, sync_mode=True)
    paid = _kill_during_sync_submit(echo_mode, victim, prompt)
    again = run_prompt(victim, prompt, timeout=200)
    assert not again.ok
    line = again.error_line()
    assert "\n" not in line and paid in line and "may have been paid" in line and "force_rerun" in line, line
    assert echo_mode.submissions == 1  # nothing paid again

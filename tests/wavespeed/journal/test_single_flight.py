"""Single-flight: identical fixed-seed submits pay once, in one process, across processes, and after
a kill -9 in the middle of a sync-mode submit. Real emulator (its accepted-submission counter is the
bill), real SQLite journal files, real subprocesses killed with SIGKILL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from emulator import Emulator
from tests.support.journal_processes import kill_when, start_worker
from tests.support.node_calls import capture_status, generate, nodes_client, poll, restart_pack


async def _generate(pack: ModuleType, prompt: str, **kw: Any) -> Any:
    task, _ = await generate(prompt, **{"unique_id": "5", **kw})
    return task


def _kill_during_sync_submit(emu: Emulator, prompt: str) -> None:
    """Start a worker in sync mode, SIGKILL it once the emulator accepted (charged) its task."""
    proc = start_worker(prompt, "11", "--sync")
    out, err = kill_when(proc, lambda: emu.submissions > 0, 60, "the worker's task was never accepted")
    assert emu.submissions == 1 and "submitted" not in out, err


# --------------------------------------------------------------------------- in one process


@pytest.mark.parametrize("sync_mode", [False, True], ids=["async", "sync"])
def test_two_identical_submits_in_one_process_pay_once(
    pack: ModuleType,
    pack_env: Emulator,
    journal_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    sync_mode: bool,
) -> None:
    pack_env.configure(inference_s=0.8)
    status = capture_status(pack, monkeypatch)

    async def both() -> list[Any]:
        tasks = await asyncio.gather(*(_generate(pack, "twin chains", sync_mode=sync_mode) for _ in range(3)))
        return await asyncio.gather(*(poll(t) for t in tasks))

    results = asyncio.run(both())
    assert pack_env.submissions == 1
    assert len({r[2] for r in results}) == 1
    assert sum("with an identical node (no charge)" in s for s in status) == 2, status
    rid = results[0][2]
    record = pack.wavespeed.tasks.journals.current_journal().get(rid)
    assert record is not None and record.status == "completed"


def test_random_seed_and_force_rerun_are_not_shared(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    pack_env.configure(inference_s=0.5)

    async def run() -> list[Any]:
        return await asyncio.gather(
            _generate(pack, "same", seed=-1),
            _generate(pack, "same", seed=-1),
            _generate(pack, "forced", force_rerun=True),
            _generate(pack, "forced", force_rerun=True),
        )

    tasks = asyncio.run(run())
    assert pack_env.submissions == 4 and len({t.request_id for t in tasks}) == 4


# --------------------------------------------------------------------------- across processes


def test_two_processes_racing_pay_once(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, tmp_path: Path
) -> None:
    """Two processes (think two ComfyUIs sharing one journal dir) submit the same fixed-seed task at
    the same moment, in sync mode (the submit's window is the whole inference)."""
    pack_env.configure(inference_s=1.5)
    go = tmp_path / "go"
    procs = [start_worker("a race between twins", "21", "--sync", "--go", str(go)) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        outs = [proc.communicate(timeout=90) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [p.returncode for p in procs] == [0, 0], outs
    submitted = sorted(line for out, _ in outs for line in out.splitlines() if line.startswith("submitted"))
    assert pack_env.submissions == 1, outs
    rids = {line.split()[1] for line in submitted}
    assert len(rids) == 1 and sorted(line.split()[2] for line in submitted) == ["$0.00", "$0.08"]
    journal = pack.wavespeed.tasks.journals.current_journal()
    assert [r.request_id for r in journal.recent()] == list(rids)
    assert journal.recent()[0].status == "completed"


# What the history and a task's /result echo of the request (WAVESPEED_API.md 12.1, 13.2): the
# evidence's default (list items "inputs" only when include_inputs is sent, /result none), /result
# "inputs" with a bare list, the list carrying "inputs" or "input" always (Go-encoded), and the older
# kinder emulator (the raw body as "input" everywhere).
ECHO_MODES = {
    "list-asked": {},
    "result-inputs": {"history_echo": "none", "result_echo": "inputs"},
    "list-inputs": {"history_echo": "inputs", "result_echo": "none"},
    "list-input": {"history_echo": "input", "result_echo": "none"},
    "raw-input": {"history_echo": "input", "result_echo": "input", "echo_style": "raw"},
}


@pytest.mark.parametrize("echo", list(ECHO_MODES))
def test_kill_during_sync_submit_then_requeue_finds_the_paid_task(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch, echo: str
) -> None:
    pack_env.configure(inference_s=1.0, **ECHO_MODES[echo])
    _kill_during_sync_submit(pack_env, "killed mid sync submit")
    (paid,) = [t.id for t in pack_env.history()]
    restart_pack(pack)
    status = capture_status(pack, monkeypatch)
    task = asyncio.run(_generate(pack, "killed mid sync submit", seed=11, sync_mode=True))
    assert task.request_id == paid and task.price_usd == 0.0
    assert pack_env.submissions == 1
    assert f"found interrupted task {paid[:8]}… in WaveSpeed history (no charge)" in status
    images, *_ = asyncio.run(poll(task))
    assert images.shape[0] == 1 and pack_env.submissions == 1
    journal = pack.wavespeed.tasks.journals.current_journal()
    assert journal.get(paid) is not None and journal.get(paid).status == "completed"

    # The intent is gone: the next re-queue is an ordinary journal reuse.
    again = asyncio.run(_generate(pack, "killed mid sync submit", seed=11, sync_mode=True))
    assert again.request_id == paid and pack_env.submissions == 1


def test_kill_during_sync_submit_without_any_echo_names_the_candidates_in_one_line(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No echo on the list nor on /result: the one line names the candidate task (id, created
    time) so the user can check it, and nothing is paid, on every re-queue."""
    errors = pack.wavespeed.core.errors
    pack_env.configure(inference_s=0.5, history_echo="none", result_echo="none")
    _kill_during_sync_submit(pack_env, "killed and not echoed")
    (paid,) = pack_env.history()
    restart_pack(pack)
    for _ in range(2):
        with pytest.raises(errors.SubmitUncertainError) as caught:
            asyncio.run(_generate(pack, "killed and not echoed", seed=11, sync_mode=True))
        message = str(caught.value)
        created = pack.wavespeed.journal.history_search.created_epoch(paid.created_at)
        assert "\n" not in message and "may have been paid" in message and "force_rerun" in message
        assert f"{paid.id} (created {time.strftime('%H:%M:%S', time.localtime(created))})" in message
    assert pack_env.submissions == 1


def test_kill_during_sync_submit_not_found_says_so_in_one_line(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history shows no task in the window (the emulator forgets the one it took, as if the
    POST had never arrived): the old one line, and nothing is paid."""
    errors = pack.wavespeed.core.errors
    pack_env.next_tasks(never_finish=True)
    _kill_during_sync_submit(pack_env, "killed and not found")
    pack_env.reset()
    restart_pack(pack)
    for _ in range(2):  # every re-queue says so; none pays
        with pytest.raises(errors.SubmitUncertainError) as caught:
            asyncio.run(_generate(pack, "killed and not found", seed=11, sync_mode=True))
        message = str(caught.value)
        assert "\n" not in message and message.startswith(
            "An identical task was being submitted when ComfyUI"
        )
        assert (
            "may have been paid: check your WaveSpeed history, or turn on force_rerun to pay again."
            in message
        )
    assert pack_env.submissions == 0

    forced = asyncio.run(_generate(pack, "killed and not found", seed=11, force_rerun=True))
    assert pack_env.submissions == 1 and forced.price_usd == pytest.approx(0.08)
    again = asyncio.run(_generate(pack, "killed and not found", seed=11))  # the forced task is reused
    assert again.request_id == forced.request_id and pack_env.submissions == 1


def test_connection_lost_after_accept_is_found_not_paid_again(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    """The submit's connection breaks after the server accepted (and charged) the task: the error
    says so, and the re-queue finds the task in the history instead of paying again."""
    errors = pack.wavespeed.core.errors
    pack_env.inject("submit", "reset_after_accept")
    with pytest.raises(errors.SubmitUncertainError):
        asyncio.run(_generate(pack, "lost reply"))
    assert pack_env.submissions == 1
    (paid,) = [t.id for t in pack_env.history()]
    task = asyncio.run(_generate(pack, "lost reply"))
    assert task.request_id == paid and task.price_usd == 0.0 and pack_env.submissions == 1


def test_a_503_after_accept_is_not_resent_and_the_requeue_finds_its_task(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    """Regression: a submit answered 503 was re-sent as "provably not accepted", so a task WaveSpeed
    had created was paid twice. Now it is sent once, the error says the identical re-queue looks for
    it, and that re-queue finds it in the history instead of paying again."""
    errors = pack.wavespeed.core.errors
    pack_env.inject("submit", "status_after_accept", status=503, times=3)
    with pytest.raises(errors.SubmitUncertainError) as caught:
        asyncio.run(_generate(pack, "a 503 after accept"))
    text = str(caught.value)
    assert "HTTP 503" in text and "queue the same inputs again" in text and "\n" not in text
    assert [r.route for r in pack_env.requests].count("submit") == 1 and pack_env.submissions == 1
    (paid,) = [t.id for t in pack_env.history()]
    task = asyncio.run(_generate(pack, "a 503 after accept"))
    assert task.request_id == paid and task.price_usd == 0.0 and pack_env.submissions == 1


@pytest.mark.parametrize("fault", ["status", "html"], ids=["503 envelope", "503 gateway page"])
def test_a_503_keeps_its_price_and_its_intent_uncertain(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, fault: str
) -> None:
    """Whatever a 503 looks like, it may have come after the task was made: the price stays booked,
    the intent stays 'uncertain', and the identical re-queue asks the history, never the submit."""
    errors = pack.wavespeed.core.errors
    pack_env.inject("submit", fault, status=503)
    with pytest.raises(errors.SubmitUncertainError):
        asyncio.run(_generate(pack, "a bare 503"))
    assert pack.wavespeed.tasks.paid.payment.SESSION_SPEND.spent_usd == pytest.approx(0.08)
    intent = _intent(pack, "a bare 503")
    assert intent is not None and intent.state == "uncertain"
    with pytest.raises(errors.SubmitUncertainError, match="force_rerun"):
        asyncio.run(_generate(pack, "a bare 503"))
    routes = [r.route for r in pack_env.requests]
    assert routes.count("submit") == 1 and pack_env.submissions == 0  # the history was asked instead
    assert any(r.path == "/api/v3/predictions" for r in pack_env.requests)


@pytest.mark.parametrize(
    ("kw", "words"),
    [({"seed": -1}, "seed is -1"), ({"seed": 5, "force_rerun": True}, "force_rerun is on")],
    ids=["seed -1", "force_rerun"],
)
def test_an_uncertain_submit_without_the_journal_says_a_requeue_pays_again(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, kw: dict[str, Any], words: str
) -> None:
    errors = pack.wavespeed.core.errors
    pack_env.inject("submit", "status", status=503)
    with pytest.raises(errors.SubmitUncertainError) as caught:
        asyncio.run(_generate(pack, "no journal to look in", **kw))
    text = str(caught.value)
    assert words in text and "new paid task" in text and "check your WaveSpeed history" in text
    assert "\n" not in text and [r.route for r in pack_env.requests].count("submit") == 1


def _intent(pack: ModuleType, prompt: str) -> Any:
    """The journal's intent for Generate's ``prompt`` with the default widgets (seed 7)."""
    request = pack.wavespeed.KontextRequest(prompt=prompt, seed=7, guidance_scale=3.5, aspect_ratio="1:1")
    identity = pack.wavespeed.journal.task_journal.params_hash(request.model, request.payload())
    account = nodes_client(pack).account_tag
    return pack.wavespeed.tasks.journals.current_journal().get_intent(account, identity)


def test_rejected_submit_releases_the_intent(pack: ModuleType, pack_env: Emulator, journal_dir: Path) -> None:
    """A submit the server refused (nothing paid) leaves no intent: the next one just submits."""
    errors = pack.wavespeed.core.errors
    pack_env.inject("submit", "status", status=400, message="bad request")
    with pytest.raises(errors.InvalidRequestError):
        asyncio.run(_generate(pack, "refused once"))
    task = asyncio.run(_generate(pack, "refused once"))
    assert pack_env.submissions == 1 and task.price_usd == pytest.approx(0.08)


def test_submit_error_with_a_task_id_is_journaled_and_shown(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's contract: a WaveSpeedError with .request_id means the task was accepted and
    paid. It is journaled in flight with the error noted, the error shows its id, and a re-queue
    reuses it instead of paying again."""
    errors = pack.wavespeed.core.errors
    client = nodes_client(pack)
    real_submit = client.submit

    def odd_reply(request: Any, *, cancel: Any = None, retry_rate_limit: bool = True) -> Any:
        # the emulator really accepts and charges it
        accepted = real_submit(request, cancel=cancel, retry_rate_limit=retry_rate_limit)
        raise errors.ServerError("WaveSpeed's submit reply holds an absurd number.", request_id=accepted.id)

    monkeypatch.setattr(client, "submit", odd_reply)
    with pytest.raises(errors.ServerError) as caught:
        asyncio.run(_generate(pack, "an odd reply"))
    (paid,) = [t.id for t in pack_env.history()]
    assert f"task {paid} was accepted and journaled" in str(caught.value) and "\n" not in str(caught.value)
    record = pack.wavespeed.tasks.journals.current_journal().get(paid)
    assert record is not None and record.status == "in_flight" and "absurd number" in record.error
    monkeypatch.setattr(client, "submit", real_submit)
    again = asyncio.run(_generate(pack, "an odd reply"))
    assert again.request_id == paid and pack_env.submissions == 1


@pytest.mark.parametrize("failure", ["journal", "disk", "other"])
def test_a_failed_single_flight_check_submits_nothing(
    pack: ModuleType,
    pack_env: Emulator,
    journal_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    """The journal fails closed (issue 17 case 2): its own JournalError, or anything unexpected from
    the disk, stops a fixed-seed submit with one line and no POST; any other typed error (e.g.
    Cancel) passes through unchanged."""
    errors = pack.wavespeed.core.errors
    raised = {
        "journal": pack.wavespeed.journal.sqlite_file.JournalError("journal damaged."),
        "disk": OSError(28, "No space left on device"),
        "other": errors.CancelledError("Cancelled."),
    }[failure]

    def broken_acquire(*args: Any, **kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr(pack.wavespeed.tasks.paid.shared_task, "acquire", broken_acquire)
    expected = (
        errors.CancelledError if failure == "other" else pack.wavespeed.journal.sqlite_file.JournalError
    )
    with pytest.raises(expected) as caught:
        asyncio.run(_generate(pack, "journal trouble"))
    assert pack_env.submissions == 0
    if failure == "disk":
        assert caught.value.kind == "full" and "force_rerun" in str(caught.value)

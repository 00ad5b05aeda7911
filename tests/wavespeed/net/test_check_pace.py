"""WaveSpeed's published pace, held in one place: every check of a task (GET its /result) that the
client makes, retries included, starts at least 2 s after the previous check of that task ended.

Against the emulator, which answers 429 to a check of a task closer than 2 s to the previous one (its
default, the least kind reading of "at least 2 seconds between checks of the same task id"): the
emulator's own arrival times and 429 count are the evidence, not the client's word.
"""

from __future__ import annotations

import threading
import time

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import CHECK_GAP_S, KontextRequest
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.net.check_pace import PACE
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from tests.support.threads import run_in_threads


def checks_of(emu: Emulator, request_id: str) -> list[tuple[float, int]]:
    """(arrival, status) of every check of the task the emulator saw, oldest first."""
    return [(r.t, r.status) for r in emu.requests if r.route == "result" and request_id in r.path]


def assert_paced(checks: list[tuple[float, int]]) -> None:
    arrivals = [t for t, _ in checks]
    assert all(b - a >= CHECK_GAP_S for a, b in zip(arrivals, arrivals[1:], strict=False)), arrivals


def test_the_emulator_refuses_a_check_closer_than_2s(
    emulator: Emulator, client: WaveSpeedClient, api_key: str
) -> None:
    """What the pace protects against: a raw second GET within 2 s is a 429 naming the rule, and it
    counts as a check itself (a third one 1.5 s after it is refused too)."""
    import requests

    task = client.submit(KontextRequest(prompt="raw"))
    url = f"{emulator.base_url}/api/v3/predictions/{task.id}/result"
    headers = {"Authorization": f"Bearer {api_key}"}
    first = requests.get(url, headers=headers, timeout=5)
    second = requests.get(url, headers=headers, timeout=5)
    time.sleep(1.5)
    third = requests.get(url, headers=headers, timeout=5)
    assert first.status_code == 200 and (second.status_code, third.status_code) == (429, 429)
    body = second.json()
    assert body["code"] == 429 and "2 seconds" in body["message"] and isinstance(body["error_code"], str)
    assert emulator.throttled_checks == 2


def test_two_checks_of_one_task_reach_the_server_2s_apart(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    task = client.submit(KontextRequest(prompt="twice"))
    assert client.get_result(task.id).id == task.id
    assert client.get_result(task.id).id == task.id  # asked at once: waits its turn instead of a 429
    checks = checks_of(emulator, task.id)
    assert [s for _, s in checks] == [200, 200] and emulator.throttled_checks == 0
    assert_paced(checks)


def test_checks_of_one_task_from_several_threads_and_clients_queue(
    emulator: Emulator, client: WaveSpeedClient, api_key: str
) -> None:
    """The pace is the process's, not a client's: three threads, two clients, one task."""
    task = client.submit(KontextRequest(prompt="crowd"))
    with WaveSpeedClient(api_key, emulator.base_url) as other:
        done, errors = run_in_threads(lambda i: (client, other)[i % 2].get_result(task.id), 3, join_s=30)
    assert errors == [] and len(done) == 3
    checks = checks_of(emulator, task.id)
    assert [s for _, s in checks] == [200, 200, 200] and emulator.throttled_checks == 0
    assert_paced(checks)


def test_checks_of_different_tasks_do_not_wait_for_each_other(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    a = client.submit(KontextRequest(prompt="a"))
    b = client.submit(KontextRequest(prompt="b"))
    client.get_result(a.id)
    client.get_result(b.id)
    client.get_result(a.id)  # waits for a's turn, not b's
    (a1, _), (a2, _) = checks_of(emulator, a.id)
    ((b1, _),) = checks_of(emulator, b.id)
    assert a1 <= b1 < a2 and b1 - a1 < CHECK_GAP_S and a2 - a1 >= CHECK_GAP_S


def test_a_retried_check_keeps_the_pace(emulator: Emulator, client: WaveSpeedClient) -> None:
    """A 503 on a poll is retried within milliseconds by the client's backoff; the retry is a check
    of the task too, so it waits for the 2 s after the failed one ended."""
    task = client.submit(KontextRequest(prompt="retry"))
    emulator.inject("result", "status", status=503)
    assert client.get_result(task.id).id == task.id
    checks = checks_of(emulator, task.id)
    assert [s for _, s in checks] == [503, 200] and emulator.throttled_checks == 0
    assert_paced(checks)


def test_cancel_ends_a_wait_for_the_turn_and_sends_nothing(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    task = client.submit(KontextRequest(prompt="cancel"))
    client.get_result(task.id)
    turn = PACE.ready_at(task.id)
    pressed = threading.Event()
    threading.Timer(0.2, pressed.set).start()
    with pytest.raises(E.CancelledError):
        client.get_result(task.id, cancel=pressed.is_set)
    assert len(checks_of(emulator, task.id)) == 1
    assert PACE.ready_at(task.id) == turn  # the cancelled turn left no mark: the next may go then


def test_a_turn_past_the_callers_deadline_times_out_at_once(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    task = client.submit(KontextRequest(prompt="deadline"))
    client.get_result(task.id)
    with pytest.raises(E.WaitTimeoutError, match=task.id):
        client.get_result(task.id, deadline=time.monotonic() + 0.5)
    assert len(checks_of(emulator, task.id)) == 1  # it did not sleep 2 s to send a check too late


def test_the_history_recovery_checks_a_candidate_at_the_same_pace(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    """``task_record`` (the interrupted-submit recovery's look at a candidate) is a check like a poll."""
    task = client.submit(KontextRequest(prompt="candidate"))
    client.get_result(task.id)
    assert client.task_record(task.id).prediction is not None
    checks = checks_of(emulator, task.id)
    assert [s for _, s in checks] == [200, 200] and emulator.throttled_checks == 0
    assert_paced(checks)


def test_a_server_stricter_than_its_published_pace_slows_the_task_down(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    """A server enforcing 3 s refuses a check 2 s after the last one; each refused check doubles the
    task's gap (4 s, ...), so the check gets through instead of being refused until retries run out,
    and the next check of a task that was answered is back at the published 2 s."""
    emulator.configure(poll_gap_s=3.0)
    task = client.submit(KontextRequest(prompt="strict"))
    assert client.get_result(task.id).id == task.id
    assert client.get_result(task.id).id == task.id  # 2 s: refused; then 4 s after it: answered
    checks = checks_of(emulator, task.id)
    assert [status for _, status in checks] == [200, 429, 200], checks
    assert checks[2][0] - checks[1][0] >= 2 * CHECK_GAP_S
    assert PACE.ready_at(task.id) - time.monotonic() <= CHECK_GAP_S  # back at the published pace


def test_each_refused_check_doubles_the_gap_until_one_gets_through(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    """A server enforcing 5 s refuses the check 2 s after the last and the one 4 s after that: the
    gap goes on doubling (8 s), so the third gets through. The gap was set back to 2 s at the end of
    each refused check before it was doubled, so it stayed at 4 s and every check was refused until
    retries ran out."""
    emulator.configure(poll_gap_s=5.0)
    task = client.submit(KontextRequest(prompt="stricter still"))
    assert client.get_result(task.id).id == task.id
    assert client.get_result(task.id).id == task.id
    checks = checks_of(emulator, task.id)
    assert [status for _, status in checks] == [200, 429, 429, 200], checks
    assert checks[3][0] - checks[2][0] >= 4 * CHECK_GAP_S
    assert PACE.ready_at(task.id) - time.monotonic() <= CHECK_GAP_S  # back at the published pace

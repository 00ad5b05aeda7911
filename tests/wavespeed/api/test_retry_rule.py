"""The one retry decision (``retry_rule.decide``), by property over any sequence of attempt outcomes.

Each attempt comes to something the client really builds: a reply of any status and body (a
WaveSpeed envelope with any code, a task, garbage, a gateway page) with any Retry-After, read by
``replies.interpret``; nothing sent (``api_session.not_reached``); or a break after sending, by
Cancel, the caller's deadline, the request's cap or the connection (``api_session.cut_off``); for a
download, the download's own errors. The attempts are run as the client's loop runs them, on a
clock of their own (each attempt takes some time, each retry waits what was decided). Whatever the
sequence:

* a submit is never sent again after its bytes went out, unless WaveSpeed's own 429 envelope
  (under HTTP 200 or 429, naming no task) refused it;
* nothing is retried past the deadline, and never more than the policy's attempts;
* a stop always carries the call's task id when it has one;
* a Retry-After the call may wait is the wait.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import example, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.api import replies as R
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.api.retry_rule import (
    BadReply,
    Call,
    Cut,
    Outcome,
    Retry,
    RetryPolicy,
    Stop,
    Unsent,
    decide,
)
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.net import downloads, transport
from wavespeed_kontext_pack.wavespeed.net.api_session import cut_off, not_reached
from wavespeed_kontext_pack.wavespeed.net.request_loop import Broken, NotSent, cut_by

RID = "5f3c9a7e1b2d4c6e8a0b1c2d3e4f5a6b"
PAID = "9c4e7a1f3b5d8e2a6c0f4b7d1e3a5c9f"  # the id a submit reply may name
BASE = "http://127.0.0.1:9"
URL = "https://cdn.example.com/out/1.png"
STATUSES = [200, 302, 400, 401, 402, 403, 404, 408, 413, 422, 425, 429, 500, 502, 503, 504]
CODES = [200, 400, 401, 402, 404, 422, 429, 500, 502, 503]
MESSAGES = ["slow down", "bad prompt", "Insufficient credits", "internal error", ""]
RETRY_AFTERS = [None, "0", "0.5", "2", "30", "119", "3600", "inf", "-5", "soon"]


@dataclass(frozen=True)
class Reply:
    """An attempt answered: its status, body and Retry-After header."""

    status: int
    body: bytes
    retry_after: str | None

    def wavespeeds_own_429(self) -> bool:
        """WaveSpeed's envelope saying 429, under HTTP 200 or 429, naming no task (read here with
        plain json, apart from the client's parser)."""
        try:
            body = json.loads(self.body)
        except ValueError:
            return False
        if not isinstance(body, dict) or self.status not in (200, 429):
            return False
        code, data = body.get("code"), body.get("data")
        names_task = isinstance(data, dict) and "id" in data
        return type(code) is int and code == 429 and not names_task


@dataclass(frozen=True)
class Unreached:
    """An attempt whose bytes never left: ``final`` when no retry can change that."""

    final: bool


@dataclass(frozen=True)
class Broke:
    """An attempt that broke after sending: ``fired`` by our window (cancel, deadline) or None."""

    fired: str | None
    by_caller: bool


Attempt = Reply | Unreached | Broke


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["envelope", "task", "garbage", "page"]))
    if kind == "garbage":
        return draw(st.sampled_from([b"", b"{", b"[1, 2]", b"null", b'{"code": true}', b"\xff\xfe"]))
    if kind == "page":
        return b"<html><body>502 Bad Gateway</body></html>"
    if kind == "task":
        data = {"id": PAID, "status": "completed", "outputs": ["https://cdn.example.com/a.png"]}
        return json.dumps({"code": 200, "message": "success", "data": data}).encode()
    envelope: dict[str, Any] = {
        "code": draw(st.sampled_from(CODES)),
        "message": draw(st.sampled_from(MESSAGES)),
    }
    if draw(st.booleans()):
        envelope["data"] = {"id": PAID} if draw(st.booleans()) else {"error": "it failed"}
    return json.dumps(envelope).encode()


replies = st.builds(Reply, st.sampled_from(STATUSES), bodies(), st.sampled_from(RETRY_AFTERS))
attempts = st.one_of(
    replies,
    st.builds(Unreached, st.booleans()),
    st.builds(
        Broke, st.sampled_from([None, transport.FIRED_CANCEL, transport.FIRED_DEADLINE]), st.booleans()
    ),
)


def api_outcome(attempt: Attempt, call: Call) -> Any:
    """What the API session makes of one attempt: a value or an outcome."""
    if isinstance(attempt, Unreached):
        return not_reached(NotSent("connection refused", final=attempt.final), BASE, call)
    if isinstance(attempt, Broke):
        return cut_off(
            Broken(attempt.fired, "ConnectionResetError"), call, by_caller=attempt.by_caller, cap=40.0
        )
    headers = {"Content-Type": "application/json"}
    if attempt.retry_after is not None:
        headers["Retry-After"] = attempt.retry_after
    reply = R.Reply(attempt.status, headers, attempt.body, False)
    submit = not call.repeatable
    reader = (lambda d: Prediction.from_data(d, lenient=True)) if submit else Prediction.from_data
    return R.interpret(
        reply, reader, during=call.during, request_id=call.request_id, idempotent=not submit, base_url=BASE
    )


def download_outcome(attempt: Attempt, call: Call) -> Any:
    """What the download makes of one attempt (a 200 is the file)."""
    rid = call.request_id
    if isinstance(attempt, Unreached):
        return Unsent(
            downloads.failed_download(URL, "connection refused", rid), "refused", final=attempt.final
        )
    if isinstance(attempt, Broke):
        by = cut_by(attempt.fired, attempt.by_caller)
        return Cut(downloads.cut_download(URL, "reset", rid, by, 120.0), "reset", by=by)
    if attempt.status == 200:
        return b"the file"
    wait_s = R.retry_after_s(attempt.retry_after)
    return BadReply(downloads.status_error(URL, attempt.status, rid), "status", retry_after_s=wait_s)


@dataclass
class Run:
    """One call's attempts as the client's loop runs them, on a clock of its own."""

    call: Call
    now: float = 0.0
    sent: int = 0

    def go(self, outcomes: list[tuple[Attempt, float]], make: Any) -> Any:
        for attempt, took_s in outcomes:
            self.sent += 1
            assert self.sent <= self.call.policy.attempts, "more attempts than the policy allows"
            got = make(attempt, self.call)
            self.now += took_s
            if not isinstance(got, Outcome):
                return got
            step = decide(got, self.call, self.sent, self.now)
            if isinstance(step, Stop):
                self.check_stop(step.error)
                return step
            self.check_retry(got, attempt, step)
            self.now += step.wait_s
        return None

    def check_retry(self, got: Outcome, attempt: Attempt, step: Retry) -> None:
        if self.call.deadline is not None:
            assert self.now + step.wait_s < self.call.deadline, "a retry past the deadline"
        if not self.call.repeatable and not isinstance(attempt, Unreached):
            assert isinstance(attempt, Reply) and attempt.wavespeeds_own_429(), ("a submit re-sent", attempt)
            assert self.call.retry_rate_limit
        if isinstance(got, BadReply) and got.retry_after_s is not None:
            assert step.wait_s == got.retry_after_s

    def check_stop(self, error: E.WaveSpeedError) -> None:
        if self.call.request_id:
            assert error.request_id == self.call.request_id, error


calls = st.builds(
    Call,
    during=st.sampled_from(["result", "upload", "balance"]),
    repeatable=st.booleans(),
    request_id=st.sampled_from([None, RID]),
    deadline=st.one_of(st.none(), st.floats(0.0, 60.0)),
    policy=st.builds(RetryPolicy, attempts=st.integers(1, 8)),
    retry_rate_limit=st.booleans(),
)
sequences = st.lists(st.tuples(attempts, st.floats(0.0, 5.0)), min_size=1, max_size=10)


@settings(max_examples=400, deadline=None)
@given(calls, sequences)
@example(  # WaveSpeed's own 429 on a submit: re-sent, then accepted
    Call("submit", repeatable=False),
    [(Reply(429, b'{"code": 429, "message": "slow down"}', "1"), 0.1), (Reply(200, b"{}", None), 0.1)],
)
@example(  # a proxy's 429 on a submit: never re-sent
    Call("submit", repeatable=False), [(Reply(429, b"<html>429</html>", None), 0.1)]
)
def test_any_sequence_of_api_attempts_keeps_the_rule(
    call: Call, outcomes: list[tuple[Attempt, float]]
) -> None:
    if not call.repeatable:
        call = Call("submit", False, None, call.deadline, call.policy, call.retry_rate_limit)
    Run(call).go(outcomes, api_outcome)


@settings(max_examples=200, deadline=None)
@given(calls, sequences)
def test_any_sequence_of_download_attempts_keeps_the_rule(
    call: Call, outcomes: list[tuple[Attempt, float]]
) -> None:
    call = Call("download", True, call.request_id, call.deadline, call.policy)
    Run(call).go(outcomes, download_outcome)


# ------------------------------------------------------------------ by example


def test_a_submit_is_sent_again_when_nothing_was_sent_or_wavespeed_said_429() -> None:
    submit = Call("submit", repeatable=False)
    unsent = api_outcome(Unreached(final=False), submit)
    refused = api_outcome(Reply(200, b'{"code": 429, "message": "slow down"}', None), submit)
    assert isinstance(decide(unsent, submit, 1, 0.0), Retry)
    assert isinstance(decide(refused, submit, 1, 0.0), Retry)
    for after_sending in (
        Broke(None, False),
        Reply(503, b'{"code": 503, "message": "busy"}', None),
        Reply(429, b"<html>429</html>", None),
        Reply(200, b"{", None),
    ):
        step = decide(api_outcome(after_sending, submit), submit, 1, 0.0)
        assert isinstance(step, Stop) and isinstance(step.error, E.SubmitUncertainError), after_sending


def test_without_rate_limit_retries_a_submit_stops_at_wavespeeds_429() -> None:
    submit = Call("submit", repeatable=False, retry_rate_limit=False)
    refused = api_outcome(Reply(429, b'{"code": 429, "message": "slow down"}', "2"), submit)
    step = decide(refused, submit, 1, 0.0)
    assert isinstance(step, Stop) and isinstance(step.error, E.RateLimitedError)
    assert step.error.retry_after_s == 2.0


def test_a_wait_that_would_reach_the_deadline_stops_now_naming_the_task() -> None:
    read = Call(
        "result", repeatable=True, request_id=RID, deadline=10.0, policy=RetryPolicy(base_delay_s=8.0)
    )
    failed = api_outcome(Reply(503, b'{"code": 503, "message": "busy"}', None), read)
    step = decide(failed, read, 2, now=9.0)  # a backoff of 4-8 s from 9 s reaches 10 s
    assert isinstance(step, Stop) and isinstance(step.error, E.WaitTimeoutError)
    assert step.error.request_id == RID and RID in str(step.error)


def test_failures_after_sending_are_typed_by_what_failed() -> None:
    """A broken connection, a server's error and a refusal are three types, each said in one line."""
    read = Call("result", repeatable=True, request_id=RID)
    cases = [
        (Broke(None, False), E.ConnectionFailedError, "Network error talking to WaveSpeed"),
        (Broke(transport.FIRED_DEADLINE, False), E.ConnectionFailedError, "a stalled connection"),
        (Unreached(final=False), E.ConnectionFailedError, "nothing was sent, nothing charged"),
        (Reply(502, b"<html></html>", None), E.ServerError, "server error during result"),
        (Reply(200, b"{", None), E.ServerError, "malformed result reply"),
    ]
    for attempt, kind, words in cases:
        error = api_outcome(attempt, read).error
        assert type(error) is kind and words in str(error) and error.request_id == RID, error

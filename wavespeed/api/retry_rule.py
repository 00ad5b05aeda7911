"""When a request is sent again, and how long it waits first: one decision (:func:`decide`) for
every API call, upload and download, from what one attempt came to.

The rule that keeps one click from billing twice:
  * Reads (result checks, downloads, balance, history) and uploads are sent again after a
    connection error, a stalled or broken exchange, a malformed reply, a 408/425/429 or a 5xx,
    with exponential backoff and jitter; ``Retry-After`` is honoured. A refused balance is never
    retried, whatever its status.
  * A submit (POST of a task) is sent again ONLY when it provably created nothing: no request byte
    was sent (refused, DNS, connect or TLS failure), or WaveSpeed's own reply refused it (a 429 in
    its JSON envelope; ``retry_rate_limit=False`` hands even that to the account's scheduler). Any
    other failure after the body was sent (reset, read timeout, any 5xx, a gateway page, a 429
    without the envelope, a garbled 200) may hide an accepted task, as every official SDK assumes:
    it is a SubmitUncertainError (replies.interpret says so) and is never repeated automatically.
  * Nothing is retried past the caller's deadline: a wait that would reach it stops now with
    WaitTimeoutError, and a ``Retry-After`` longer than the call may wait (or than
    ``RetryPolicy.max_retry_after_s``) stops now with the reason, instead of a nap.
  * Cancel, or the caller's deadline, cutting an exchange stops at once; the request's own cap
    cutting a read is a stalled connection, retried.
  * Every check of a task, retries included, also waits its turn on WaveSpeed's pace (at least 2 s
    after the previous check of that task ended): net/check_pace.py, around each attempt.

Decisions, and why:

* **One function, no exceptions.** An attempt's failure comes in as data (:class:`BadReply`,
  :class:`Unsent`, :class:`Cut`), each holding the typed error it means, built whole by the code
  that knows the call (its task, status, Retry-After, wording); :func:`decide` returns
  :class:`Retry` (how long to wait) or :class:`Stop` (the error to raise), and the loop that runs
  the attempts (net/request_loop.py ``retrying``) only carries it out. openai-python's
  ``_should_retry`` is the shape; ours also says how long, and stops typed.
* **A refusal of our own** (a request that fails validation, a body over its cap, a redirect to
  another host) is raised where it is found: no attempt could change it, so it asks nothing here.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import Enum

from ..core import errors as E

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: delay_n = uniform(0.5, 1) * min(cap, base * 2**n)."""

    attempts: int = 6
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    max_retry_after_s: float = 120.0  # a server asking for longer gets a typed error now, not a nap

    def delay(self, attempt: int) -> float:
        return float(random.uniform(0.5, 1.0) * min(self.max_delay_s, self.base_delay_s * 2.0**attempt))


@dataclass(frozen=True)
class Call:
    """What the decision knows of a call: its name in messages (``during``: "result", "submit",
    "upload", "download", ...), whether it may be sent again once bytes went out (``repeatable``: a
    read or an upload; a submit is not), the task it concerns, its deadline (``time.monotonic()``),
    its policy, and whether a submit waits out WaveSpeed's own 429 (``retry_rate_limit``)."""

    during: str
    repeatable: bool
    request_id: str | None = None
    deadline: float | None = None
    policy: RetryPolicy = RetryPolicy()
    retry_rate_limit: bool = True


class CutBy(str, Enum):
    """What ended an exchange after its bytes were sent, when it was our doing."""

    CANCEL = "cancel"  # the user's Cancel
    DEADLINE = "deadline"  # the caller's deadline
    CAP = "cap"  # the request's own wall-clock cap (a stalled connection)


@dataclass(frozen=True)
class Outcome:
    """One attempt that gave no value: the error it means if it is not tried again, and a few
    words for the log line of a retry."""

    error: E.WaveSpeedError
    reason: str


@dataclass(frozen=True)
class BadReply(Outcome):
    """The server answered, but not with the value: its ``Retry-After`` (seconds, clamped; None
    when absent or unreadable), and whether the reply could not be read at all (``garbled``)."""

    retry_after_s: float | None = None
    garbled: bool = False


@dataclass(frozen=True)
class Unsent(Outcome):
    """No request byte reached the server; ``final`` when no retry can change that (an untrusted
    certificate, a proxy refusing the tunnel)."""

    final: bool = False


@dataclass(frozen=True)
class Cut(Outcome):
    """Request bytes were sent, then the exchange broke: ``by`` our Cancel, deadline or cap, or
    None when the connection itself failed."""

    by: CutBy | None = None


@dataclass(frozen=True)
class Retry:
    """Send the request again after ``wait_s`` seconds."""

    wait_s: float


@dataclass(frozen=True)
class Stop:
    """Give up: raise ``error``."""

    error: E.WaveSpeedError


def decide(outcome: Outcome, call: Call, attempt: int, now: float) -> Retry | Stop:
    """The rule of the module docstring for attempt number ``attempt`` (1 for the first) of
    ``call``, which came to ``outcome`` at ``now`` (``time.monotonic()``)."""
    if not _may_repeat(outcome, call) or attempt >= call.policy.attempts:
        return Stop(outcome.error)
    limit = math.inf if call.deadline is None else call.deadline - now
    asked = outcome.retry_after_s if isinstance(outcome, BadReply) else None
    if asked is not None and asked > min(call.policy.max_retry_after_s, limit):
        return Stop(refused_wait(outcome.error, asked, call.during, attempt))
    wait_s = call.policy.delay(attempt - 1) if asked is None else asked
    if wait_s >= limit:
        return Stop(timeout_error(call.request_id))
    return Retry(wait_s)


def _may_repeat(outcome: Outcome, call: Call) -> bool:
    """Whether sending the request again could help and cannot bill twice."""
    if isinstance(outcome, Unsent):
        return not outcome.final  # nothing reached the server: even a submit
    if isinstance(outcome, Cut):
        return call.repeatable and outcome.by not in (CutBy.CANCEL, CutBy.DEADLINE)
    error = outcome.error
    if isinstance(error, E.InsufficientBalanceError):  # refused, whatever the status
        return False
    if not call.repeatable:
        # replies.interpret gives a submit a RateLimitedError only for WaveSpeed's own 429 envelope.
        return isinstance(error, E.RateLimitedError) and call.retry_rate_limit
    garbled = isinstance(outcome, BadReply) and outcome.garbled
    return garbled or error.status in RETRYABLE_STATUS


def later_hint(what: str, request_id: str | None) -> str:
    """``what``, and for a task that exists, that it may still finish and how to fetch it."""
    if not request_id:
        return f"{what}."
    return (
        f"{what}; task {request_id} may still finish and is already paid for: paste this request id "
        "into WaveSpeed Poll Result to fetch it later without a new charge."
    )


def timeout_error(request_id: str | None, during: str = "") -> E.WaitTimeoutError:
    what = f"Timed out{during}" if during else "Timed out waiting for WaveSpeed"
    return E.WaitTimeoutError(later_hint(what, request_id), request_id=request_id)


def cancelled_error(request_id: str | None, what: str = "Cancelled") -> E.CancelledError:
    return E.CancelledError(later_hint(what, request_id), request_id=request_id)


def refused_wait(failure: E.WaveSpeedError, wait_s: float, during: str, attempt: int) -> E.WaveSpeedError:
    """The error for a Retry-After longer than the call may wait: no "retries ran out" when
    nothing was retried; a task that exists is named by the error itself (its ``request_id``)."""
    answer = f"HTTP {failure.status}" if failure.status else "a failed reply"
    tried = "" if attempt <= 1 else f", after {attempt - 1} retr{'y' if attempt == 2 else 'ies'}"
    what = (
        f"WaveSpeed asked to wait {wait_s:.0f} s before the next {during} request ({answer}{tried}), "
        "longer than this call may wait"
    )
    hints = ["lower the number of parallel tasks"] if isinstance(failure, E.RateLimitedError) else []
    if not failure.request_id:
        hints.append(
            "no task was created (nothing charged): queue again later"
            if during == "submit"
            else "try again later"
        )
    return failure.replaced(what=what, hint="; ".join(hints))

"""Fault rules and per-task plans: the knobs tests turn to make the emulator misbehave on purpose.

Rules are consumed: each fires on the next `times` matching requests and is then gone, so a test can
say "the first poll gets a 503, the second succeeds" without timing games. Rules are checked in
insertion order; route "any" matches every API, download and upload request.

Kinds (the request is NOT processed unless stated, so a faulted submit creates no task):
  status               HTTP `status` (500) + error envelope; Retry-After if retry_after is set
  html                 HTTP `status` (502) with a gateway-style text/html page
  reset                read the request, then abort the TCP connection with an RST
  slow                 sleep delay_s, then handle normally (processed)
  malformed            200, application/json, body that is not valid JSON
  wrong_shape          200, valid JSON lacking the expected fields
  envelope_error       HTTP 200 whose envelope carries `status` (500) as its code, with `message`
                       (some gateways and clients put the error only in the body's code)
  reset_after_accept   submit only: create (and charge) the task, then RST instead of replying
  status_after_accept  submit only: create the task, then reply `status` (504), like a gateway
                       timing out in front of a sync-mode request (an extra beyond the brief)
  truncate             download only: full Content-Length header, half the body, then close
  corrupt              download only: full length, garbage from the middle on (not decodable)
  dribble              handle normally (processed), then send the whole reply (status line,
                       headers, body) one byte every delay_s seconds
  huge                 200, application/json, a HUGE_BYTES body (a never-ending JSON string)
  absurd               submit/result, processed: the normal reply plus a 1e400 inference time,
                       a NaN field and a deeply nested array (the task id stays valid)
  retry_after          HTTP `status` (429) with the raw header `Retry-After: <message>` (default
                       "soon"), for garbage, negative, huge or date values
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

ROUTES: frozenset[str] = frozenset({"submit", "result", "download", "upload", "balance", "any"})

FAULT_KINDS: frozenset[str] = frozenset(
    {
        "status",
        "html",
        "reset",
        "reset_after_accept",
        "status_after_accept",
        "slow",
        "malformed",
        "wrong_shape",
        "envelope_error",
        "truncate",
        "corrupt",
        "dribble",
        "huge",
        "absurd",
        "retry_after",
    }
)

HUGE_BYTES = 100 * 1024 * 1024
ABSURD_DEPTH = 5000

# Kinds that only make sense on one route (they act on a created task or on a file body).
_ROUTE_ONLY: dict[str, str] = {
    "reset_after_accept": "submit",
    "status_after_accept": "submit",
    "truncate": "download",
    "corrupt": "download",
}


@dataclass
class FaultRule:
    """One injected fault: what to do, on which route, how many more times."""

    route: str
    kind: str
    times: int = 1
    status: int | None = None
    retry_after: float | None = None
    delay_s: float | None = None
    message: str | None = None
    detail: str | None = None  # the error body's data.error, when it says more than the message
    error_code: int | str | None = None  # the error body's error_code (as the error_code_type switch says)

    def validate(self) -> None:
        """Reject rules that could never fire or would fire nonsensically (fail at inject time)."""
        if self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}; expected one of {sorted(ROUTES)}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        only = _ROUTE_ONLY.get(self.kind)
        if only is not None and self.route != only:
            raise ValueError(f"fault kind {self.kind!r} only applies to route {only!r}")
        if not isinstance(self.times, int) or isinstance(self.times, bool) or self.times < 1:
            raise ValueError("times must be a positive integer")
        if self.status is not None and not 100 <= int(self.status) <= 599:
            raise ValueError("status must be an HTTP status code (100-599)")
        if self.kind == "slow" and (self.delay_s is None or self.delay_s < 0):
            raise ValueError("a 'slow' fault needs delay_s >= 0")
        if self.kind == "dribble" and (self.delay_s is None or self.delay_s <= 0):
            raise ValueError("a 'dribble' fault needs delay_s > 0 (seconds per byte)")
        if self.kind == "absurd" and self.route not in ("submit", "result"):
            raise ValueError("fault kind 'absurd' only applies to routes 'submit' and 'result'")


@dataclass
class TaskPlan:
    """How the next `times` accepted submissions behave (see Emulator.next_tasks)."""

    times: int = 1
    fail: str | None = None
    fail_code: int = 1403
    never_finish: bool = False
    nsfw: bool = False
    inference_s: float | None = None
    queue_s: float | None = None
    end_status: str | None = None  # "cancelled" / "timeout" / "deleted" (tasks.END_STATUSES)


class FaultBook:
    """Thread-safe store of fault rules and task plans, consumed in insertion order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._plans: list[TaskPlan] = []

    def add_rule(self, rule: FaultRule) -> None:
        rule.validate()
        with self._lock:
            self._rules.append(rule)

    def add_plan(self, plan: TaskPlan) -> None:
        if not isinstance(plan.times, int) or isinstance(plan.times, bool) or plan.times < 1:
            raise ValueError("times must be a positive integer")
        if plan.fail is not None and plan.never_finish:
            raise ValueError("a task cannot both fail and never finish")
        if plan.end_status is not None and (plan.fail is not None or plan.never_finish):
            raise ValueError("a task ends one way: end_status, fail or never_finish")
        with self._lock:
            self._plans.append(plan)

    def take_rule(self, route: str) -> FaultRule | None:
        """Consume one use of the first rule matching route (or "any"); None if no rule applies."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule.route == route or rule.route == "any":
                    rule.times -= 1
                    if rule.times <= 0:
                        del self._rules[i]
                    return rule
        return None

    def take_plan(self) -> TaskPlan | None:
        """Consume one use of the oldest task plan; None means "behave normally"."""
        with self._lock:
            if not self._plans:
                return None
            plan = self._plans[0]
            plan.times -= 1
            if plan.times <= 0:
                del self._plans[0]
            return plan

    def pending(self) -> int:
        """Number of rules still armed (for assertions)."""
        with self._lock:
            return len(self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._plans.clear()

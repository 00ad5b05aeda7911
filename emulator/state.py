"""The emulator's state and the Backend protocol's implementation (what the request handler may use).

EmulatorState holds tasks, stored files, balance, the account window, fault rules and the request
log behind one lock, and answers the handler through public methods only (backend.py). Lifecycle
and test controls (start/stop, inject, configure, reset) are added by server.Emulator.
"""

from __future__ import annotations

import hmac
import math
import random
import secrets
import threading
import time
import uuid
from dataclasses import asdict
from typing import Any, Literal
from urllib.parse import urlsplit

from .backend import PAYMENT_REQUIRED, RATE_LIMITED, UploadTicket
from .behaviour.fault_rules import FaultBook, FaultRule
from .behaviour.model_registry import MODELS, ValidationError, validate_request
from .behaviour.tasks import Task, decode_data_uri, prediction_object, render, rfc3339_ns
from .behaviour.tiers import Account, Tier, tier_named
from .records import LiveRecord, RequestRecord
from .routes.echo import echo_of, go_time, with_echo

INVALID_PARAMETER_CODE = 1401  # the task code of a bad value found after the submit (error-codes docs)


class EmulatorState:
    """Everything the emulator remembers, and the public calls the handler makes on it."""

    def __init__(
        self, api_keys: tuple[str, ...], tier: str | Tier, minute_s: float, seed: int | None
    ) -> None:
        self.api_keys = api_keys
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._faults = FaultBook()
        self._base_url: str | None = None
        self._port: int | None = None
        self.inference_s = 0.0
        self.queue_s = 0.0
        self.sync_timeout_s = 90.0
        self.output_format = "jpeg"
        self._balance = 0.0
        self._configured_balance = 0.0
        self.inference_max_s: float | None = None
        self.retry_after_on_429 = False
        # How far the emulator is kind (server.Emulator's docstring): the defaults are the least
        # kind reading of the evidence (WAVESPEED_API.md sections 12 and 13).
        self.history_echo = "asked"
        self.result_echo = "none"
        self.echo_style = "go"
        self.history_strict = True
        self.low_balance_status = 400
        self.error_body = "full"
        self.edit_size = "kontext"
        self.created_at_digits = 3
        self.error_code_type = "string"
        self.bad_values = "refused"
        self.poll_gap_s = 2.0
        self._checked: dict[str, float] = {}  # task id -> when it was last checked (monotonic)
        self._throttled = 0
        self._rng = random.Random(seed)
        self._account = Account(tier_named(tier), minute_s)
        self._tasks: dict[str, Task] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._tickets: dict[str, UploadTicket] = {}
        self._uploads: list[bytes] = []
        self._records: list[LiveRecord] = []
        self._submissions = 0

    @property
    def base_url(self) -> str:
        """http://host:port of the running server. Raises RuntimeError before start()."""
        if self._base_url is None:
            raise RuntimeError("emulator not started")
        return self._base_url

    @property
    def port(self) -> int:
        """The bound port. Raises RuntimeError before start()."""
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    # ----------------------------------------------------------------- what tests inspect

    @property
    def submissions(self) -> int:
        """Accepted submissions (tasks created): the counter that exposes double submits."""
        with self._lock:
            return self._submissions

    @property
    def requests(self) -> list[RequestRecord]:
        """Every API request so far, oldest first (control endpoints are not recorded)."""
        with self._lock:
            return [r.frozen() for r in self._records]

    @property
    def uploads(self) -> list[bytes]:
        """The bytes of every file uploaded so far, oldest first."""
        with self._lock:
            return list(self._uploads)

    @property
    def balance(self) -> float:
        """The account balance in USD after the charges so far."""
        with self._lock:
            return self._balance

    @property
    def pending_faults(self) -> int:
        """Fault rules still armed (0 once every injected fault has fired)."""
        return self._faults.pending()

    def task(self, request_id: str) -> Task:
        """The stored task (KeyError if unknown), e.g. to assert on its input payload or seed."""
        with self._lock:
            return self._tasks[request_id]

    def stats(self) -> dict[str, Any]:
        """What GET /_emulator/stats returns."""
        with self._lock:
            return {
                "submissions": self._submissions,
                "requests": [asdict(r) for r in self.requests],
                "uploads": len(self._uploads),
                "balance": self._balance,
                "tier": self._account.tier.name,
                "rate_limited": self._account.refused,
            }

    @property
    def throttled_checks(self) -> int:
        """Checks of a task answered 429 because its previous check was under ``poll_gap_s`` ago."""
        with self._lock:
            return self._throttled

    @property
    def tier(self) -> Tier:
        """The account level in force (limits.TIERS)."""
        with self._lock:
            return self._account.tier

    @property
    def rate_limited(self) -> int:
        """Submits refused with 429 by the per-minute window since the tier was (re)configured."""
        with self._lock:
            return self._account.refused

    def rate_limit_reply(self) -> tuple[str, dict[str, str]]:
        """The 429 message and headers (Retry-After only if retry_after_on_429 is set)."""
        with self._lock:
            account, with_header = self._account, self.retry_after_on_429
        wait = account.resets_in(time.monotonic())
        message = (
            f"Too many requests: your account level ({account.tier.name}) allows "
            f"{account.tier.per_minute} tasks per minute; the limit resets every minute."
        )
        return message, ({"Retry-After": str(max(1, math.ceil(wait)))} if with_header else {})

    # ------------------------------------------------- the Backend protocol (backend.py): the handler's view

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries one of api_keys as a Bearer token (constant time)."""
        if not header:
            return False
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        ok = False
        for key in self.api_keys:
            ok |= hmac.compare_digest(token.encode(), key.encode())
        return ok

    def log_request(self, rec: LiveRecord) -> None:
        """Append a request to the log that `requests` returns (its status is filled in later)."""
        with self._lock:
            self._records.append(rec)

    def take_fault(self, route: str) -> FaultRule | None:
        """Consume the next armed fault rule that applies to route, if any."""
        return self._faults.take_rule(route)

    def wait(self, seconds: float) -> bool:
        """Sleep up to seconds. Returns False if the emulator is stopping (the caller gives up)."""
        if seconds > 0:
            return not self._stop_event.wait(seconds)
        return not self._stop_event.is_set()

    def check_pace(self, request_id: str) -> float | None:
        """Count a check of ``request_id`` now: the gap it broke (the caller answers 429), or None.
        Every check counts, a refused one too (the least kind reading of "at least 2 seconds
        between checks of the same task id"); ``poll_gap_s`` 0 never refuses."""
        now = time.monotonic()
        with self._lock:
            last = self._checked.get(request_id)
            self._checked[request_id] = now
            gap = self.poll_gap_s
            if gap > 0 and last is not None and now - last < gap:
                self._throttled += 1
                return gap
        return None

    def delete(self, ids: list[str]) -> int:
        """``POST /api/v3/predictions/delete``: the known tasks among ``ids`` read ``deleted`` from
        now on and their output files are gone; how many were deleted."""
        now = time.monotonic()
        count = 0
        with self._lock:
            for request_id in dict.fromkeys(ids):
                task = self._tasks.get(request_id)
                if task is None or task.deleted_at is not None:
                    continue
                task.deleted_at = now
                count += 1
                for path in [p for p in self._files if p.startswith(f"/cdn/output/{request_id}-")]:
                    del self._files[path]
        return count

    def file(self, path: str) -> tuple[bytes, str] | None:
        """A stored file (an output or an upload) by URL path: (bytes, MIME type), or None."""
        with self._lock:
            return self._files.get(path)

    def add_upload(self, path: str, data: bytes, mime: str) -> None:
        """Store an uploaded file at path and count it in `uploads`."""
        with self._lock:
            self._files[path] = (data, mime)
            self._uploads.append(data)

    def add_ticket(self, token: str, ticket: UploadTicket) -> None:
        """Remember a direct-upload PUT URL's token until the PUT arrives."""
        with self._lock:
            self._tickets[token] = ticket

    def take_ticket(self, token: str) -> UploadTicket | None:
        """Consume a direct-upload token (None if unknown or already used)."""
        with self._lock:
            return self._tickets.pop(token, None)

    def history(self) -> list[Task]:
        """Every task, oldest first (what GET predictions lists, newest first)."""
        with self._lock:
            return list(self._tasks.values())

    def prediction(
        self, task: Task, now: float, *, where: str = "submit", asked: bool = False
    ) -> dict[str, Any]:
        """The API's prediction object for task at monotonic time now (renders outputs once due).

        ``where``: "submit" (no echo), "result" (the ``result_echo`` switch) or "list" (the
        ``history_echo`` switch): which key, if any, carries the echo of the request. ``asked``:
        the history call sent ``include_inputs: true``.
        """
        if task.is_due(now) and task.deleted_at is None:
            self._render(task)
        obj = prediction_object(task, now)
        key = {"result": self.result_echo, "list": self.history_echo}.get(where, "none")
        echo = echo_of(task.input, MODELS[task.model].schema, self.echo_style)
        return with_echo(obj, key, echo, asked=asked and where == "list")

    def submit(self, model: str, body: dict[str, Any], base_url: str) -> Task | Literal[402, 429]:
        """Charge for and create a task (it then runs by the clock: behaviour/tasks.py).

        Args:
            model: a key of MODELS. body: the JSON request. base_url: for output links.
        Returns:
            The task; or 402 if the balance is short (the handler answers with
            ``low_balance_status``), 429 if the account's per-minute window is full (behaviour/tiers.py):
            then nothing is charged or created.
        Raises:
            ValidationError: body is not a valid request for model (a 400), unless ``bad_values``
                is "task": then the task is created and charged, and fails with code 1401.
        """
        spec = MODELS[model]
        invalid: str | None = None
        try:
            req = validate_request(spec, body)
        except ValidationError as exc:
            if self.bad_values != "task":
                raise
            invalid, req = str(exc), validate_request(spec, {"prompt": "-"})
        with self._lock:
            cost = spec.price * req.num_images
            if self._balance + 1e-9 < cost:
                return PAYMENT_REQUIRED
            now = time.monotonic()
            if not self._account.admit(now):
                return RATE_LIMITED
            plan = self._faults.take_plan()
            self._balance = round(self._balance - cost, 6)
            self._submissions += 1
            seed = req.seed if req.seed is not None and req.seed >= 0 else secrets.randbelow(2**31)
            created_ns = time.time_ns()
            digits = self.created_at_digits
            task = Task(
                id=uuid.uuid4().hex,
                model=model,
                kind=spec.kind,
                input=body,
                request=req,
                seed=seed,
                created_at=rfc3339_ns(created_ns) if digits >= 9 else go_time(created_ns, digits=digits),
                created_ns=created_ns,
                keep_input_size=self.edit_size == "input",
                submitted_mono=now,
                queue_s=self.queue_s,
                inference_s=self._draw_inference_s(),
                output_format=self.output_format,
                base_url=base_url,
            )
            if plan is not None:
                task.fail = plan.fail
                task.fail_code = plan.fail_code
                task.never_finish = plan.never_finish
                task.nsfw = plan.nsfw
                task.end_status = plan.end_status
                if plan.inference_s is not None:
                    task.inference_s = plan.inference_s
                if plan.queue_s is not None:
                    task.queue_s = plan.queue_s
            if invalid is not None:
                task.fail, task.fail_code = invalid, INVALID_PARAMETER_CODE
            # Over the concurrency limit the task waits in `created` until a slot frees.
            run_s = math.inf if task.never_finish else task.inference_s
            start = self._account.start_at(now + task.queue_s, run_s)
            task.queue_s = start - now
            self._tasks[task.id] = task
        if not task.never_finish and task.fail is None and task.end_status is None:
            # Render ahead in the background so the first poll after completion is fast.
            threading.Thread(target=self._render, args=(task,), daemon=True).start()
        return task

    # ------------------------------------------------- private helpers

    def _store_file(self, path: str, data: bytes, mime: str) -> None:
        with self._lock:
            self._files[path] = (data, mime)

    def _fetch_input(self, url: str) -> bytes | None:
        """Resolve an input image URL: data: URIs and this emulator's own files; nothing else."""
        if url.startswith("data:"):
            return decode_data_uri(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or port != self._port:
            return None
        found = self.file(parts.path)
        return found[0] if found else None

    def _render(self, task: Task) -> None:
        render(task, self._fetch_input, self._store_file)

    def _draw_inference_s(self) -> float:
        """The configured inference time, or a uniform draw up to inference_max_s (lock held)."""
        top = self.inference_max_s
        if top is None or top <= self.inference_s:
            return self.inference_s
        return self._rng.uniform(self.inference_s, top)

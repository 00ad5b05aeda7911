"""The Emulator: state and lifecycle of a local WaveSpeed v3 API server for tests, benchmarks and demos.

`Emulator` owns tasks, stored files, balance, fault rules and the request log, and runs a
ThreadingHTTPServer (handler.py) in a daemon thread on loopback.
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
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from .faults import FaultBook, FaultRule, TaskPlan
from .handler import MAX_UPLOAD_BYTES, ApiServer, UploadTicket
from .imagegen import OUTPUT_FORMATS
from .limits import Account, Tier, tier_named
from .models import MODELS, validate_request
from .records import LiveRecord, RequestRecord
from .tasks import Task, decode_data_uri, prediction_object, render, rfc3339_ns

__all__ = ["MAX_UPLOAD_BYTES", "Emulator", "RequestRecord"]

_CONFIG_KEYS = (
    "inference_s",
    "queue_s",
    "sync_timeout_s",
    "output_format",
    "balance",
    "tier",
    "minute_s",
    "inference_max_s",
    "retry_after_on_429",
)
RATE_LIMITED_STATUS = 429


def _check_nonneg(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")
    return float(value)


class Emulator:
    """A local WaveSpeed v3 API: start() it, point a client at base_url, inspect what happened.

    Config values (inference_s, queue_s, output_format) are snapshotted per task at submit time, so
    configure() affects later submissions only. reset() restores the configured balance.

    Account limits (limits.py): ``tier`` bronze | silver | gold | ultra | none (default) and
    ``minute_s`` (the window, 60 s on the API) give 429s past the per-minute rate and keep tasks past
    the concurrency limit in ``created``. ``inference_max_s`` draws each task's inference time
    uniformly from [inference_s, inference_max_s] (``seed`` makes the draws repeatable).
    """

    def __init__(
        self,
        api_keys: tuple[str, ...] | list[str] = ("emulator-key",),
        inference_s: float = 0.5,
        queue_s: float = 0.0,
        sync_timeout_s: float = 90.0,
        output_format: str = "jpeg",
        balance: float = 100.0,
        host: str = "127.0.0.1",
        *,
        tier: str | Tier = "none",
        minute_s: float = 60.0,
        inference_max_s: float | None = None,
        retry_after_on_429: bool = False,
        seed: int | None = None,
    ) -> None:
        if isinstance(api_keys, str):
            api_keys = (api_keys,)
        if not api_keys or not all(isinstance(k, str) and k for k in api_keys):
            raise ValueError("api_keys must be a non-empty sequence of non-empty strings")
        self.api_keys: tuple[str, ...] = tuple(api_keys)
        self.host = host
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._faults = FaultBook()
        self._server: ApiServer | None = None
        self._thread: threading.Thread | None = None
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
        self._rng = random.Random(seed)
        self._account = Account(tier_named(tier), minute_s, time.monotonic())
        self.configure(
            inference_s=inference_s,
            queue_s=queue_s,
            sync_timeout_s=sync_timeout_s,
            output_format=output_format,
            balance=balance,
            tier=tier,
            minute_s=minute_s,
            inference_max_s=inference_max_s,
            retry_after_on_429=retry_after_on_429,
        )
        self._tasks: dict[str, Task] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._tickets: dict[str, UploadTicket] = {}
        self._uploads: list[bytes] = []
        self._records: list[LiveRecord] = []
        self._submissions = 0

    # ----------------------------------------------------------------- lifecycle

    def start(self, port: int = 0) -> str:
        """Bind host:port (0 = a free port), serve in a daemon thread, return the base URL."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = ApiServer((self.host, port), self)
        self._stop_event.clear()
        self._server = server
        self._port = int(server.server_address[1])
        shown = self.host if ":" not in self.host else f"[{self.host}]"
        self._base_url = f"http://{shown}:{self._port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="wavespeed-emulator",
            daemon=True,
        )
        self._thread.start()
        return self._base_url

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections, join the thread (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stop_event.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5.0)
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("emulator not started")
        return self._base_url

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    # ----------------------------------------------------------------- test controls

    def inject(
        self,
        route: str,
        kind: str,
        *,
        times: int = 1,
        status: int | None = None,
        retry_after: float | None = None,
        delay_s: float | None = None,
        message: str | None = None,
    ) -> None:
        """Arm a fault on the next `times` requests to route; kinds are described in faults.py.

        route: submit | result | download | upload | balance | any. Raises ValueError for a kind
        that cannot apply to the route (e.g. truncate on result), so a typo never silently passes.
        """
        self._faults.add_rule(
            FaultRule(
                route=route,
                kind=kind,
                times=times,
                status=status,
                retry_after=retry_after,
                delay_s=delay_s,
                message=message,
            )
        )

    def next_tasks(
        self,
        times: int = 1,
        *,
        fail: str | None = None,
        fail_code: int = 1403,
        never_finish: bool = False,
        nsfw: bool = False,
        inference_s: float | None = None,
        queue_s: float | None = None,
    ) -> None:
        """Decide how the next `times` accepted submissions end (fail, hang, NSFW, timing)."""
        if inference_s is not None:
            _check_nonneg("inference_s", inference_s)
        if queue_s is not None:
            _check_nonneg("queue_s", queue_s)
        self._faults.add_plan(
            TaskPlan(
                times=times,
                fail=fail,
                fail_code=int(fail_code),
                never_finish=bool(never_finish),
                nsfw=bool(nsfw),
                inference_s=inference_s,
                queue_s=queue_s,
            )
        )

    def configure(self, **kw: Any) -> None:
        """Change inference_s, queue_s, sync_timeout_s, output_format, balance, the account limits
        (tier, minute_s: a new tier or minute starts a fresh window and frees every slot),
        inference_max_s and/or retry_after_on_429 at runtime."""
        unknown = set(kw) - set(_CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        updates: dict[str, Any] = {}
        for name in ("inference_s", "queue_s", "sync_timeout_s", "balance"):
            if name in kw:
                updates[name] = _check_nonneg(name, kw[name])
        if "output_format" in kw:
            fmt = kw["output_format"]
            if fmt not in OUTPUT_FORMATS:
                raise ValueError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}")
            updates["output_format"] = fmt
        if "inference_max_s" in kw and kw["inference_max_s"] is not None:
            updates["inference_max_s"] = _check_nonneg("inference_max_s", kw["inference_max_s"])
        elif "inference_max_s" in kw:
            updates["inference_max_s"] = None
        if "retry_after_on_429" in kw:
            updates["retry_after_on_429"] = bool(kw["retry_after_on_429"])
        account: Account | None = None
        if "tier" in kw or "minute_s" in kw:
            account = Account(
                tier_named(kw.get("tier", self._account.tier)),
                kw.get("minute_s", self._account.minute_s),
                time.monotonic(),
            )
        with self._lock:
            if account is not None:
                self._account = account
            for name, value in updates.items():
                if name == "balance":
                    self._balance = self._configured_balance = value
                else:
                    setattr(self, name, value)

    def reset(self) -> None:
        """Forget tasks, files, uploads, faults, plans, counters and records; keep config and keys."""
        self._faults.clear()
        with self._lock:
            self._tasks.clear()
            self._files.clear()
            self._tickets.clear()
            self._uploads.clear()
            self._records.clear()
            self._submissions = 0
            self._balance = self._configured_balance
            self._account = Account(self._account.tier, self._account.minute_s, time.monotonic())

    @property
    def submissions(self) -> int:
        """Accepted submissions (tasks created): the counter that exposes double submits."""
        with self._lock:
            return self._submissions

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return [r.frozen() for r in self._records]

    @property
    def uploads(self) -> list[bytes]:
        with self._lock:
            return list(self._uploads)

    @property
    def balance(self) -> float:
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

    # ------------------------------------------------- package-internal: called by handler.py only

    def _check_key(self, header: str | None) -> bool:
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

    def _record(self, rec: LiveRecord) -> None:
        with self._lock:
            self._records.append(rec)

    def _store_file(self, path: str, data: bytes, mime: str) -> None:
        with self._lock:
            self._files[path] = (data, mime)

    def _add_upload(self, path: str, data: bytes, mime: str) -> None:
        with self._lock:
            self._files[path] = (data, mime)
            self._uploads.append(data)

    def _add_ticket(self, token: str, ticket: UploadTicket) -> None:
        with self._lock:
            self._tickets[token] = ticket

    def _take_ticket(self, token: str) -> UploadTicket | None:
        with self._lock:
            return self._tickets.pop(token, None)

    def _take_fault(self, route: str) -> FaultRule | None:
        return self._faults.take_rule(route)

    def _all_tasks(self) -> list[Task]:
        with self._lock:
            return list(self._tasks.values())

    def _get_file(self, path: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._files.get(path)

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
        found = self._get_file(parts.path)
        return found[0] if found else None

    def _render(self, task: Task) -> None:
        render(task, self._fetch_input, self._store_file)

    def _data_for(self, task: Task, now: float) -> dict[str, Any]:
        if task.is_due(now):
            self._render(task)
        return prediction_object(task, now)

    def _create_task(self, model: str, body: dict[str, Any], base_url: str) -> Task | int:
        """Charge and create a task; returns the HTTP status instead if the balance is short (402) or
        the account's per-minute window is full (429)."""
        spec = MODELS[model]
        req = validate_request(spec, body)
        with self._lock:
            cost = spec.price * req.num_images
            if self._balance + 1e-9 < cost:
                return 402
            now = time.monotonic()
            if not self._account.admit(now):
                return RATE_LIMITED_STATUS
            plan = self._faults.take_plan()
            self._balance = round(self._balance - cost, 6)
            self._submissions += 1
            seed = req.seed if req.seed is not None and req.seed >= 0 else secrets.randbelow(2**31)
            task = Task(
                id=uuid.uuid4().hex,
                model=model,
                kind=spec.kind,
                input=body,
                request=req,
                seed=seed,
                created_at=rfc3339_ns(time.time_ns()),
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
                if plan.inference_s is not None:
                    task.inference_s = plan.inference_s
                if plan.queue_s is not None:
                    task.queue_s = plan.queue_s
            # Over the concurrency limit the task waits in `created` until a slot frees.
            run_s = math.inf if task.never_finish else task.inference_s
            start = self._account.start_at(now + task.queue_s, run_s)
            task.queue_s = start - now
            self._tasks[task.id] = task
        if not task.never_finish and task.fail is None:
            # Render ahead in the background so the first poll after completion is fast.
            threading.Thread(target=self._render, args=(task,), daemon=True).start()
        return task

    def _draw_inference_s(self) -> float:
        """The configured inference time, or a uniform draw up to inference_max_s (lock held)."""
        top = self.inference_max_s
        if top is None or top <= self.inference_s:
            return self.inference_s
        return self._rng.uniform(self.inference_s, top)

    def _wait(self, seconds: float) -> bool:
        """Sleep up to seconds; False if the emulator is stopping."""
        if seconds > 0:
            return not self._stop_event.wait(seconds)
        return not self._stop_event.is_set()

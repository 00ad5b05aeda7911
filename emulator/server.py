"""The Emulator: lifecycle and test controls of a local WaveSpeed v3 API server for tests, benchmarks and demos.

`Emulator` adds to its state (state.py: tasks, files, balance, faults, the request log) a
ThreadingHTTPServer (routes/handler.py) in a daemon thread on loopback, and the controls tests use
(inject, next_tasks, configure, reset). The handler sees the state only through the public
methods of the Backend protocol (backend.py); imports point server -> handler -> backend.
"""

from __future__ import annotations

import ssl
import threading
from types import TracebackType
from typing import Any

from .backend import MAX_UPLOAD_BYTES
from .behaviour.fault_rules import FaultRule, TaskPlan
from .behaviour.imagegen import OUTPUT_FORMATS
from .behaviour.tasks import END_STATUSES, MODERATION_CODE, MODERATION_MESSAGE
from .behaviour.tiers import Account, Tier, tier_named
from .records import RequestRecord
from .routes.echo import ECHO_KEYS, ECHO_STYLES, HISTORY_ECHOES
from .routes.handler import ApiServer, make_server
from .state import EmulatorState

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
    *(
        "history_echo",
        "result_echo",
        "echo_style",
        "history_strict",
        "low_balance_status",
        "error_body",
        "edit_size",
        "created_at_digits",
        "error_code_type",
        "poll_gap_s",
        "bad_values",
    ),
)

# The switches of how kind the emulator is (Emulator's docstring), and the values each may take.
_CHOICES: dict[str, tuple[object, ...]] = {
    "history_echo": HISTORY_ECHOES,
    "result_echo": ECHO_KEYS,
    "echo_style": ECHO_STYLES,
    "history_strict": (True, False),
    "low_balance_status": (400, 402, 403),
    "error_body": ("full", "plain"),
    "edit_size": ("kontext", "input"),
    "created_at_digits": tuple(range(10)),
    "error_code_type": ("string", "int"),
    "bad_values": ("refused", "task"),
}

#: The older, kinder behaviour in one dict: ``Emulator(**KIND)`` or ``configure(**KIND)``.
KIND: dict[str, object] = {
    "history_echo": "input",
    "result_echo": "input",
    "echo_style": "raw",
    "history_strict": False,
    "low_balance_status": 402,
    "error_body": "plain",
    "edit_size": "input",
    "created_at_digits": 9,
    "error_code_type": "int",
    "poll_gap_s": 0.0,
}


def _check_nonneg(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")
    return float(value)


class Emulator(EmulatorState):
    """A local WaveSpeed v3 API: start() it, point a client at base_url, inspect what happened.

    Config values (inference_s, queue_s, output_format) are snapshotted per task at submit time, so
    configure() affects later submissions only. reset() restores the configured balance.

    Account limits (behaviour/tiers.py): ``tier`` bronze | silver | gold | ultra | none (default) and
    ``minute_s`` (the window, 60 s on the API) give 429s past the per-minute rate and keep tasks past
    the concurrency limit in ``created``. ``inference_max_s`` draws each task's inference time
    uniformly from [inference_s, inference_max_s] (``seed`` makes the draws repeatable).
    ``nodelay`` gives accepted sockets TCP_NODELAY (off: replies show the 40 ms Nagle stall).
    ``tls``, a server SSLContext, serves https (base_url and output links then say https), as the
    API does; tests make the certificate and its CA at test time.

    By default the emulator is the least kind reading of the public evidence (WAVESPEED_API.md
    sections 12 and 13); each switch keeps the older, kinder behaviour reachable (``KIND`` holds them all):
      history_echo        "asked" | "none" | "input" | "inputs": the request echo on history list
                          items (default "asked": ``inputs`` only when the call sends
                          ``include_inputs: true``, as an official CLI revision did; the docs'
                          items and the desktop app's type have none)
      result_echo         "none" | "input" | "inputs" on a task's ``/result`` (default none: no
                          evidence that it echoes; the CLI only reads one if present)
      echo_style          "go" (keys outside the schema dropped, 4.0 as 4, keys sorted) | "raw"
      history_strict      page and page_size (1..100) required on the history call (else defaults)
      low_balance_status  400 | 402 | 403: the HTTP status of "Insufficient credits" (default 400)
      error_body          "full" ({code, message, error_code, data: {error}}) | "plain" (data null)
      edit_size           "kontext" (an edit without aspect_ratio: the preferred Kontext size
                          nearest the input's ratio) | "input" (the input's own size)
      created_at_digits   fraction digits of ``created_at`` before Go cuts trailing zeros (3;
                          9 keeps all nine, as the docs' example shows)
      error_code_type     "string" (an error body's ``error_code`` as text, as the official
                          ai-sdk-provider, CLI and MCP type it: WAVESPEED_API.md 13.8) | "int"
      poll_gap_s          a check of a task (GET its /result) under this many seconds after the
                          previous check of it is answered 429, and counts as a check itself
                          (default 2.0: the published pace, 13.1); 0 never refuses one
      bad_values          "refused" (a bad value is a 400 before any task: the docs' reading) |
                          "task" (the submit is accepted and charged, the task fails with code
                          1401, refunded later: the other reading, WAVESPEED_API.md 5.1)

    Tasks can end ``deleted`` (``next_tasks(end_status="deleted")``) or be deleted by
    ``POST /api/v3/predictions/delete {"ids": [...]}`` (13.6): their ``/result`` then reads
    ``deleted``, with no outputs, and their files are gone.

    Raises:
        ValueError: an empty api_keys, or a config value configure() refuses.
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
        nodelay: bool = True,
        tls: ssl.SSLContext | None = None,
        **switches: Any,
    ) -> None:
        if isinstance(api_keys, str):
            api_keys = (api_keys,)
        if not api_keys or not all(isinstance(k, str) and k for k in api_keys):
            raise ValueError("api_keys must be a non-empty sequence of non-empty strings")
        super().__init__(tuple(api_keys), tier, minute_s, seed)
        self.host = host
        self.nodelay = nodelay
        self.tls = tls
        self._server: ApiServer | None = None
        self._thread: threading.Thread | None = None
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
            **switches,
        )

    # ----------------------------------------------------------------- lifecycle

    def start(self, port: int = 0) -> str:
        """Bind host:port, serve in a daemon thread.

        Args:
            port: the port to bind; 0 picks a free one.
        Returns:
            The base URL, e.g. http://127.0.0.1:40123 (https:// with ``tls``).
        Raises:
            RuntimeError: already started. OSError: the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = make_server((self.host, port), self, nodelay=self.nodelay, tls=self.tls)
        self._stop_event.clear()
        self._server = server
        self._port = int(server.server_address[1])
        shown = self.host if ":" not in self.host else f"[{self.host}]"
        self._base_url = f"{server.scheme}://{shown}:{self._port}"
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
        detail: str | None = None,
        error_code: int | str | None = None,
    ) -> None:
        """Arm a fault on the next `times` requests to route; kinds are described in behaviour/fault_rules.py.

        route: submit | result | download | upload | balance | any. Raises ValueError for a kind
        that cannot apply to the route (e.g. truncate on result), so a typo never silently passes.
        ``detail`` / ``error_code``: what a "status" fault's body carries as ``data.error`` and
        ``error_code`` (with error_body="full"), e.g. a generic message and the real reason apart.
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
                detail=detail,
                error_code=error_code,
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
        moderated: bool = False,
        end_status: str | None = None,
    ) -> None:
        """Decide how the next `times` accepted submissions end (fail, hang, NSFW, timing).

        ``moderated``: fail with code 1200 and a "potentially sensitive" message (a Kontext [max]
        moderation refusal). ``end_status``: "cancelled", "timeout" or "deleted" instead of completed.
        """
        if moderated:
            fail, fail_code = fail or MODERATION_MESSAGE, MODERATION_CODE
        if end_status is not None and end_status not in END_STATUSES:
            raise ValueError(f"end_status must be one of {', '.join(END_STATUSES)}")
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
                end_status=end_status,
            )
        )

    def configure(self, **kw: Any) -> None:
        """Change inference_s, queue_s, sync_timeout_s, output_format, balance, the account limits
        (tier, minute_s: a new tier or minute starts a fresh window and frees every slot),
        inference_max_s, retry_after_on_429 and/or the kindness switches (class docstring) at runtime."""
        unknown = set(kw) - set(_CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        updates: dict[str, Any] = {}
        for name in ("inference_s", "queue_s", "sync_timeout_s", "balance", "poll_gap_s"):
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
        for name, choices in _CHOICES.items():
            if name in kw:
                value = kw[name]
                if isinstance(value, bool) != isinstance(choices[0], bool) or value not in choices:
                    raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}")
                updates[name] = value
        account: Account | None = None
        if "tier" in kw or "minute_s" in kw:
            account = Account(
                tier_named(kw.get("tier", self._account.tier)),
                kw.get("minute_s", self._account.minute_s),
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
            self._checked.clear()
            self._throttled = 0
            self._submissions = 0
            self._balance = self._configured_balance
            self._account = Account(self._account.tier, self._account.minute_s)

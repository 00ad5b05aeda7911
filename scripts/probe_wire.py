"""The live probe's view of the wire (scripts/live_probe.py): raw calls read by their HTTP status AND
their envelope ``code``, what each answer means for money, and the cap on paid tasks.

Why a raw view: the pack's client turns replies into typed errors and retries some; the probe
must see what the server really said. Each reply gets one ``answer``:

* ``ok``: HTTP 200 with an envelope code 200 (or none);
* ``throttled``: a 429 in the status or in the envelope: WaveSpeed refused it, no task exists, it
  may be sent again after a pause;
* ``server error``: a 5xx in either, or a gateway page: a submit answered so MAY have been
  accepted, so it is counted as paid and never sent again;
* ``refused``: any other 4xx (400 bad value, 401 key, 404 task): nothing was created.

A 429 is therefore never read as "the key was refused" or "the value was refused". The probe's
paid submits go through :class:`Budget`: at most ``COST_USD`` worth, each accepted or possibly
accepted submit counted, the bad-value one too when WaveSpeed takes it as a task.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from scripts.pack_loader import load_pack

load_pack()
from wavespeed_kontext_pack.wavespeed.net import transport  # noqa: E402
from wavespeed_kontext_pack.wavespeed.net.check_pace import PACE  # noqa: E402
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient  # noqa: E402
from wavespeed_kontext_pack.wavespeed.settings.origin import parse_origin  # noqa: E402

OK, THROTTLED, SERVER_ERROR, REFUSED = "ok", "throttled", "server error", "refused"
PAID_TASKS = 2  # two images of $0.08: the probe's promise of at most $0.16
_KEPT_HEADERS = ("retry", "rate", "limit", "content-type", "x-request-id")
_CHECK = re.compile(r"^/api/v3/predictions/(?P<id>[^/]+)(/result)?$")  # a check of one task
THROTTLE_RETRIES = 3


def envelope_code(body: Any) -> int | None:
    """The envelope's ``code`` as a number (it may come as a string), or None."""
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, str) and code.strip().isdigit():
        return int(code)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def answer(status: int, code: int | None) -> str:
    """What a reply means (module docstring), from its HTTP status and its envelope code."""
    said = {status} if code is None else {status, code}
    if 429 in said:
        return THROTTLED
    if any(c >= 500 for c in said):
        return SERVER_ERROR
    if status == 200 and code in (None, 200):
        return OK
    if any(400 <= c < 500 for c in said):
        return REFUSED
    return SERVER_ERROR  # a 3xx or a code nobody documents: nothing to rely on, for money the worst


@dataclass
class Budget:
    """The paid tasks the probe may cause: accepted (an id) or possibly accepted (none)."""

    limit: int = PAID_TASKS
    paid: list[str] = field(default_factory=list)  # what each one was, with its id if known

    @property
    def room(self) -> int:
        return self.limit - len(self.paid)

    def count(self, what: str) -> None:
        self.paid.append(what)


class ClientThrottles(logging.Handler):
    """The pack's client's own 429s (its retry warnings say ``HTTP 429``), while attached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "HTTP 429" in text:
            self.lines.append(text)


class Probe:
    """Raw calls (to see the wire as it is) over the pack's own route (its proxy and CA settings)
    and the pack's client, with what was seen recorded."""

    def __init__(self, base_url: str, key: str, *, cut_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.cut_s = cut_s
        self.client = WaveSpeedClient(key, base_url)
        self.raw = requests.Session()
        self.raw.trust_env = False  # the route is the pack's (settings/network.py), .netrc never read
        self.raw.verify = self.client.trust.verify
        adapter = transport.GuardedAdapter(parse_origin(base_url), self.client.trust)
        self.raw.mount("http://", adapter)
        self.raw.mount("https://", adapter)
        self.raw.headers["Authorization"] = f"Bearer {key}"
        self.budget = Budget()
        self.seen_429: list[dict[str, Any]] = []
        self.statuses: set[str] = set()
        self.created_ats: list[str] = []

    def call(
        self, method: str, path: str, body: Any = None, *, key: str | None = None, paced: bool = True
    ) -> dict[str, Any]:
        """One raw request: status, envelope code, answer, the headers worth keeping, the body. A raw
        check of a task keeps the pack's pace too (2 s after the last check of it ended), unless
        ``paced`` is off (the one row that tests whether WaveSpeed throttles a faster check)."""
        headers = {"Authorization": f"Bearer {key}"} if key is not None else None
        check = _CHECK.match(path) if method == "GET" and paced else None
        task = check.group("id") if check else None
        turn = (
            PACE.turn(task, cancel=None, deadline=None, request_id=task) if task else contextlib.nullcontext()
        )
        with turn:
            r = self.raw.request(method, self.base_url + path, json=body, headers=headers, timeout=60)
        kept = {k: v for k, v in r.headers.items() if any(w in k.lower() for w in _KEPT_HEADERS)}
        try:
            parsed: Any = r.json()
        except ValueError:
            parsed = r.text[:500]
        code = envelope_code(parsed)
        meaning = answer(r.status_code, code)
        if meaning == THROTTLED:
            self.seen_429.append(
                {"path": path.split("?")[0][:60], "status": r.status_code, "code": code, **kept}
            )
        data = parsed.get("data") if isinstance(parsed, dict) else None
        for item in (data.get("items") or []) if isinstance(data, dict) and "items" in data else [data]:
            if isinstance(item, dict):
                self.statuses.add(str(item.get("status")))
                if isinstance(item.get("created_at"), str):
                    self.created_ats.append(item["created_at"])
        return {"status": r.status_code, "code": code, "answer": meaning, "headers": kept, "body": parsed}

    def submit(self, model: str, body: dict[str, Any], what: str) -> dict[str, Any] | None:
        """A raw paid submit within the budget: None when there is no room. A 429 (WaveSpeed's own
        refusal: no task) is sent again after a pause; a 5xx or gateway page may hide a task, so
        it is counted and never sent again; an accepted one is counted with its id."""
        if self.budget.room < 1:
            return None
        reply: dict[str, Any] = {}
        for attempt in range(THROTTLE_RETRIES + 1):
            reply = self.call("POST", f"/api/v3/{model}", body)
            if reply["answer"] != THROTTLED or attempt == THROTTLE_RETRIES:
                break
            time.sleep(_pause(reply["headers"]))
        reply["throttled_first"] = attempt
        if reply["answer"] == OK:
            self.budget.count(f"{what}: {task_id(reply) or 'no id'}")
        elif reply["answer"] == SERVER_ERROR:
            self.budget.count(f"{what}: HTTP {reply['status']}, may have been accepted")
        return reply


def _pause(headers: dict[str, str]) -> float:
    """Retry-After when the server says one (at most 30 s), else 3 s."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    return min(30.0, float(value)) if value.strip().replace(".", "", 1).isdigit() else 3.0


def task_id(reply: dict[str, Any]) -> str | None:
    data = reply["body"].get("data") if isinstance(reply["body"], dict) else None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def error_shape(reply: dict[str, Any]) -> dict[str, Any]:
    """The keys and texts of an error reply, as the report shows them."""
    body = reply["body"]
    shape: dict[str, Any] = {"status": reply["status"], "code": reply["code"], "answer": reply["answer"]}
    if not isinstance(body, dict):
        return {**shape, "body": body}
    data = body.get("data")
    error_code = body.get("error_code")
    return {
        **shape,
        "keys": sorted(body),
        "message": body.get("message"),
        "error_code": error_code,
        "error_code_type": None if error_code is None else type(error_code).__name__,
        "data.error": data.get("error") if isinstance(data, dict) else None,
    }


def echo_key(obj: Any) -> str:
    """Which echo an object carries: "inputs" (read first, as the official CLI does), "input", "none"."""
    if not isinstance(obj, dict):
        return "none"
    return next((k for k in ("inputs", "input") if isinstance(obj.get(k), dict)), "none")


def echo_of(obj: Any) -> dict[str, Any] | None:
    """The echo an object carries (``inputs`` read first), or None."""
    key = echo_key(obj)
    return None if key == "none" else dict(obj[key])


def listed(probe: Probe, query: dict[str, Any], task: str | None) -> dict[str, Any] | None:
    """The history item of ``task`` when the call asks for inputs (``include_inputs: true``)."""
    reply = probe.call("POST", "/api/v3/predictions", {**query, "include_inputs": True})
    data = reply["body"].get("data") if isinstance(reply["body"], dict) else None
    items = data.get("items") if isinstance(data, dict) else None
    return next((i for i in items or [] if isinstance(i, dict) and i.get("id") == task), None)

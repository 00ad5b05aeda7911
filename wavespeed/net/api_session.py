"""The client's one authenticated session to the API: it holds the key, names the account, and runs
every API call's attempts. The public calls (client.py) are built on ``ApiSession._api_json``.

Retries: each attempt's failure becomes an outcome of the one retry rule (../api/retry_rule.py,
where the rule that keeps one click from billing twice is written), with the error it means built
here whole: a connection failure (ConnectionFailedError: nothing reached WaveSpeed, or a read's
connection broke or stalled), or what the reply says (../api/replies.py ``interpret``: a server
error, a refusal, a submit that may have been paid). Every check of a task (GET its /result),
retries included, waits its turn: at least 2 s after the previous check of that task ended
(check_pace.PACE, WaveSpeed's published pace), and a check WaveSpeed answers 429 makes the next
one wait longer (``PACE.throttled``).

The API key goes only to the configured base URL: added per API request (the session holds no
default auth), checked again at send time against the parsed origin (transport.GuardedAdapter),
and API calls never follow redirects (a 3xx is a ConfigError). Output downloads (CDN URLs) never
carry the Authorization header, so they may follow redirects (at most 5).

Every request runs inside a wall-clock window: min(its own total cap, the caller's deadline). When
it closes, or Cancel turns true for a read, the socket is shut down and the worker returns at once
with a typed error (transport.guard). A submit is not cut by Cancel: once its body is sent, only its
own cap ends it, so a paid id gets through; nor is an upload (free, and its URL fills the cache for
the next run): both end at their window. Replies are size-capped and parsed totally
(replies.load_json): only our typed errors come out.

The account: the key never leaves this class; the journal, the scheduler, the poller and the node
layer's client cache all know the account by ``account_tag`` (``account_tag_for`` before a client
exists), so one key cannot be two accounts in two places.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from urllib3.util import parse_url

from ..api import replies as R
from ..api.retry_rule import (
    BadReply,
    Call,
    Cut,
    CutBy,
    Outcome,
    RetryPolicy,
    Unsent,
    cancelled_error,
    timeout_error,
)
from ..core import errors as E
from ..core.vocabulary import CancelCheck
from ..settings import network
from ..settings.origin import DEFAULT_BASE_URL, parse_origin
from . import transport
from .check_pace import PACE, check_turn
from .downloads import MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_REDIRECTS
from .request_loop import (
    NOTHING_SENT,
    Broken,
    NotSent,
    Unreached,
    cut_by,
    exchange,
    retrying,
    timeouts,
    unreached,
    window,
)

__all__ = ["ApiSession", "account_tag_for"]

log = logging.getLogger("wavespeed")

T = TypeVar("T")
Reader = Callable[[Any], T]  # the envelope's ``data`` -> a typed reply


def account_tag_for(base_url: str, api_key: str) -> str:
    """The one name of the account of (base URL, key): 16 hex characters of a salted sha256, which
    reveal nothing about the key. The base URL is normalised as a client normalises it, so this is
    ``WaveSpeedClient(api_key, base_url).account_tag``. The salt is the journal's since its first
    rows: changing it would orphan every journalled task.

    Raises:
        ConfigError: a bad ``base_url`` (as the client's constructor would).
    """
    normalised = parse_origin(base_url).base_url
    return hashlib.sha256(f"wavespeed-journal\n{normalised}\n{api_key}".encode()).hexdigest()[:16]


class ApiSession:
    """One pooled keep-alive session per client; safe to share between threads."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        request_cap_s: float | None = None,
        download_cap_s: float = 120.0,
        upload_cap_s: float = 120.0,
        retry: RetryPolicy | None = None,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        client_name: str = "comfyui-wavespeed-kontext",
    ) -> None:
        """``request_cap_s`` is the wall-clock cap of one API call (default: connect + read
        timeout); downloads and uploads have their own caps. A caller's deadline can only shorten
        them.

        Raises:
            ConfigError: no key, a key with spaces or non-ASCII characters, a bad ``base_url``, or
                a CA bundle variable naming a file that cannot be read (settings/network.py).
        """
        if not api_key:
            raise E.ConfigError("No WaveSpeed API key given: set WAVESPEED_API_KEY.")
        E.register_secret(api_key)
        if not api_key.isascii() or not api_key.isprintable() or " " in api_key:
            raise E.ConfigError(
                "The WaveSpeed API key contains spaces or non-ASCII characters (a copy-paste slip?): "
                "set WAVESPEED_API_KEY to the key exactly as wavespeed.ai shows it."
            )
        self._api_key = api_key
        self.origin = parse_origin(base_url)
        self.base_url = self.origin.base_url
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.request_cap_s = request_cap_s
        self.download_cap_s = download_cap_s
        self.upload_cap_s = upload_cap_s
        self.retry = retry or RetryPolicy()
        self.max_download_bytes = max_download_bytes
        self.trust = network.trust_from_env()
        self._session = requests.Session()
        adapter = transport.GuardedAdapter(
            self.origin, self.trust, pool_connections=4, pool_maxsize=64, max_retries=0
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"X-Client-Name": client_name, "User-Agent": client_name})
        # No .netrc (it could add auth): proxies and CA bundles are read explicitly instead
        # (settings/network.py), the proxy per request by the adapter.
        self._session.trust_env = False
        self._session.verify = self.trust.verify
        self._session.max_redirects = MAX_DOWNLOAD_REDIRECTS
        self._lock = threading.Lock()
        self.request_count = 0

    @property
    def account_tag(self) -> str:
        """A one-way, key-free tag of this client's account (base URL + key), the name the journal,
        the scheduler and the poller know the account by; the key itself never leaves the client."""
        return account_tag_for(self.base_url, self._api_key)

    def close(self) -> None:
        self._session.close()

    def _api_json(
        self,
        method: str,
        path: str,
        reader: Reader[T],
        *,
        during: str,
        idempotent: bool,
        json: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        request_id: str | None = None,
        deadline: float | None = None,
        cancel: CancelCheck | None = None,
        read_timeout_s: float | None = None,
        cap_s: float | None = None,
        retry_rate_limit: bool = True,
        paced: bool = False,
    ) -> T:
        """One API call (the key in its header), its attempts run by the retry rule; ``reader``
        parses the envelope's ``data``. ``paced``: a check of task ``request_id``: every attempt
        waits its turn on check_pace.PACE (WaveSpeed's 2 s between checks of one task)."""
        call = Call(during, idempotent, request_id, deadline, self.retry, retry_rate_limit)
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}"}
        read_s = read_timeout_s or self.read_timeout_s
        cap = cap_s or self.request_cap_s or (self.connect_timeout_s + read_s)
        # Cancel cuts a read mid-flight; a submit (it may be paid) and an upload (it finishes in the
        # background and fills the upload cache for the next run) end only at their window.
        cuts = cancel if idempotent and during != "upload" else None
        checked = request_id if paced else None

        def attempt() -> T | Outcome:
            by_caller = False
            try:
                with check_turn(checked, cancel=cancel, deadline=deadline):
                    timeout = timeouts(self.connect_timeout_s, read_s, deadline, request_id)
                    end, by_caller = window(deadline, cap)
                    with transport.guard(end, cuts) as guard:
                        self._count()
                        reply = exchange(
                            self._session,
                            method,
                            url,
                            guard,
                            headers=headers,
                            json=json,
                            files=files,
                            timeout=timeout,
                            trust=self.trust,
                        )
                    parsed = R.interpret(
                        reply,
                        reader,
                        during=during,
                        request_id=request_id,
                        idempotent=idempotent,
                        base_url=self.base_url,
                    )
                    if (
                        checked
                        and isinstance(parsed, BadReply)
                        and isinstance(parsed.error, E.RateLimitedError)
                    ):
                        PACE.throttled(checked)  # within its turn: the gap after this check doubles
            except NotSent as exc:
                return not_reached(exc, self.base_url, call)
            except Broken as exc:
                return cut_off(exc, call, by_caller=by_caller, cap=cap)
            return parsed

        return retrying(call, attempt, cancel)

    def reach(self, *, timeout_s: float = 10.0) -> int | Unreached:
        """One GET of the balance path WITHOUT the key, free: the HTTP status the API answered (401
        expected: the route, the proxy and TLS all work), or why it was not reached. A connection
        check's first step; nothing is retried."""
        url = self.base_url + "/api/v3/balance"
        end, _ = window(None, timeout_s)
        with transport.guard(end) as guard:
            self._count()
            try:
                timeout = (self.connect_timeout_s, timeout_s)
                with self._session.get(url, timeout=timeout, stream=True, allow_redirects=False) as reply:
                    return reply.status_code
            except (requests.RequestException, OSError) as exc:
                if guard.sent:
                    return Unreached(
                        "connect",
                        f"the connection broke after the request ({type(exc).__name__})",
                        "check your network",
                    )
                return unreached(exc, url, self.trust, cut=guard.fired == transport.FIRED_DEADLINE)

    def _count(self) -> None:
        """One more request sent (tests and benchmarks read ``request_count``)."""
        with self._lock:
            self.request_count += 1


def not_reached(exc: NotSent, base_url: str, call: Call) -> Unsent:
    """A call whose request never reached WaveSpeed: a connection failure, in one line that says
    nothing was sent or charged, what failed and what to do."""
    hint = f"{NOTHING_SENT}; {exc.hint}"
    if exc.final:  # no retry can change it: said without the call
        parsed = parse_url(base_url)
        what = f"Could not reach WaveSpeed at {parsed.scheme}://{parsed.netloc}: {exc}"
    else:
        what = f"Cannot reach WaveSpeed at {base_url} during {call.during}: {exc}"
    error = E.ConnectionFailedError(what, request_id=call.request_id, hint=hint)
    return Unsent(error, str(exc), final=exc.final)


def cut_off(exc: Broken, call: Call, *, by_caller: bool, cap: float) -> Cut:
    """A call whose exchange broke after its bytes were sent, with the error that means: Cancel,
    the caller's deadline, a submit that may have been paid, or a read's broken connection."""
    by = cut_by(exc.fired, by_caller)
    error: E.WaveSpeedError
    if by is CutBy.CANCEL:
        error = cancelled_error(call.request_id)
    elif not call.repeatable:
        stalled = by is not None
        why = f"no complete reply within {cap:.0f} s" if stalled else f"the connection failed: {exc.reason}"
        error = R.uncertain_submit(f"The submit was sent but {why}")
    elif by is CutBy.DEADLINE:
        error = timeout_error(call.request_id)
    elif by is CutBy.CAP:
        error = E.ConnectionFailedError(
            f"WaveSpeed did not finish its {call.during} reply within {cap:.0f} s (a stalled connection); "
            "retries ran out, try again later.",
            request_id=call.request_id,
        )
    else:
        error = E.ConnectionFailedError(
            f"Network error talking to WaveSpeed during {call.during} ({exc.reason}); retries ran out.",
            request_id=call.request_id,
        )
    return Cut(error, exc.reason, by=by)

"""The pieces of the client's retry/deadline loop: backoff, windows, Cancel, and typed failures.

Every request runs inside a wall-clock window, min(its own cap, the caller's deadline)
(``window``); sleeps between attempts are sliced so Cancel and the deadline are seen within
``CANCEL_SLICE_S`` (``sleep``); a server's ``Retry-After`` is honoured unless it is longer than
the call may wait, which raises now with the reason (``backoff``); every check of a task waits its
turn on ``check_pace.PACE`` (at least ``CHECK_GAP_S`` after the previous check of that task ended). The rule of
which failures are retried (and why a submit almost never is) is written in ``api_session``'s
docstring; this module holds the mechanics, with no session and no client state.
"""

from __future__ import annotations

import functools
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import requests
from urllib3.exceptions import NameResolutionError, ProxyError
from urllib3.util import parse_url

from ..api import replies as R
from ..api.replies import MAX_REPLY_BYTES
from ..core import errors as E
from ..core.vocabulary import CancelCheck
from ..settings import network
from . import transport

Out = TypeVar("Out")
P = ParamSpec("P")

CANCEL_SLICE_S = 0.1  # how often sleeps look at the cancel callback (issue asks for <= 0.25 s)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: delay_n = uniform(0.5, 1) * min(cap, base * 2**n)."""

    attempts: int = 6
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    max_retry_after_s: float = 120.0  # a server asking for longer gets a typed error now, not a nap

    def delay(self, attempt: int) -> float:
        return float(random.uniform(0.5, 1.0) * min(self.max_delay_s, self.base_delay_s * 2.0**attempt))


NOTHING_SENT = "nothing was sent, nothing charged"


class NotSent(Exception):
    """The request provably never reached the server (safe to retry even a submit); ``hint`` says
    what to do if it keeps failing."""

    def __init__(self, what: str, *, hint: str = "check your network") -> None:
        self.hint = hint
        super().__init__(what)


class Broken(Exception):
    """The exchange broke after the connection was made; ``fired`` says whether our window did it."""

    def __init__(self, fired: str | None, reason: str) -> None:
        self.fired = fired
        self.reason = reason
        super().__init__(reason)


def names_its_task(call: Callable[P, Out]) -> Callable[P, Out]:
    """Once a task exists (the call's ``request_id``), every error it raises records it, so its
    text names the task and how to fetch it (core/errors.py renders that)."""

    @functools.wraps(call)
    def named(*args: P.args, **kwargs: P.kwargs) -> Out:
        try:
            return call(*args, **kwargs)
        except E.WaveSpeedError as exc:
            request_id = kwargs.get("request_id")
            if isinstance(request_id, str) and request_id and not exc.request_id:
                exc.with_task(request_id, journaled=None)
            raise

    return named


def window(deadline: float | None, cap_s: float) -> tuple[float, bool]:
    """End of one request's window: min(now + its own cap, the caller's deadline), and whether
    the caller's deadline is the one that ends it."""
    own = time.monotonic() + cap_s
    if deadline is not None and deadline <= own:
        return deadline, True
    return own, False


def timeouts(
    connect_s: float, read_s: float, deadline: float | None, request_id: str | None
) -> tuple[float, float]:
    """The (connect, read) timeouts of one attempt, shortened to what is left of the deadline."""
    if deadline is None:
        return (connect_s, read_s)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise timeout_error(request_id)
    return (min(connect_s, remaining), min(read_s, remaining))


def check_cancel(cancel: CancelCheck | None, request_id: str | None) -> None:
    if cancel is not None and cancel():
        raise E.CancelledError(R.later_hint("Cancelled", request_id), request_id=request_id)


def timeout_error(request_id: str | None, during: str = "") -> E.WaitTimeoutError:
    what = f"Timed out{during}" if during else "Timed out waiting for WaveSpeed"
    return E.WaitTimeoutError(R.later_hint(what, request_id), request_id=request_id)


def sleep(
    seconds: float, *, cancel: CancelCheck | None, deadline: float | None, request_id: str | None
) -> None:
    """Sleep in short slices so Cancel and the deadline are noticed quickly."""
    end = time.monotonic() + seconds
    while True:
        check_cancel(cancel, request_id)
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise timeout_error(request_id)
        if now >= end:
            return
        time.sleep(min(CANCEL_SLICE_S, end - now))


def backoff(
    retry: RetryPolicy,
    attempt: int,
    wait_s: float | None,
    deadline: float | None,
    failure: E.WaveSpeedError,
    during: str,
) -> float:
    """Backoff, or the server's Retry-After; a Retry-After past the deadline (or past
    ``max_retry_after_s``) raises the failure now, saying so, instead of sleeping."""
    if wait_s is None:
        delay = retry.delay(attempt - 1)
        return delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
    limit = retry.max_retry_after_s
    if deadline is not None:
        limit = min(limit, deadline - time.monotonic())
    if wait_s > limit:
        raise refused_wait(failure, wait_s, during, attempt)
    return wait_s


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


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    guard: transport.Guard,
    *,
    headers: dict[str, str],
    json: dict[str, Any] | None,
    files: dict[str, Any] | None,
    timeout: tuple[float, float],
    trust: network.Trust | None = None,
) -> R.Reply:
    """Send one request and read its body up to MAX_REPLY_BYTES, inside ``guard``'s window.

    Raises:
        NotSent: no request byte reached the socket (refused, DNS, proxy, connect or TLS failure).
        ServerError: the same for a TLS certificate ``trust`` does not cover or a proxy that
            refuses the tunnel (not retried).
        Broken: it failed after request bytes were written (``fired`` says whether our window
            cut it): the server may have read them, so a submit may have been accepted.
    """
    try:
        resp = session.request(
            method,
            url,
            headers=headers,
            json=json,
            files=files,
            timeout=timeout,
            stream=True,
            allow_redirects=False,
        )
    except (requests.RequestException, OSError) as exc:
        if guard.sent == 0 and guard.fired != transport.FIRED_CANCEL:
            raise not_sent(exc, url, trust, cut=guard.fired == transport.FIRED_DEADLINE) from exc
        raise Broken(guard.fired, type(exc).__name__) from None
    try:
        with resp:
            body, truncated = R.read_up_to(resp, MAX_REPLY_BYTES)
    except (requests.RequestException, OSError) as exc:
        raise Broken(guard.fired, type(exc).__name__) from None
    return R.Reply(resp.status_code, resp.headers, body, truncated)


def broken(
    exc: Broken,
    during: str,
    idempotent: bool,
    request_id: str | None,
    *,
    by_caller: bool,
    cap: float,
) -> E.WaveSpeedError:
    """The typed error for an exchange that broke mid-way; raises it when it must not be retried."""
    if exc.fired == transport.FIRED_CANCEL:
        raise E.CancelledError(R.later_hint("Cancelled", request_id), request_id=request_id)
    stalled = exc.fired == transport.FIRED_DEADLINE
    if not idempotent:
        why = f"no complete reply within {cap:.0f} s" if stalled else f"the connection failed: {exc.reason}"
        raise R.uncertain_submit(f"The submit was sent but {why}")
    if stalled and by_caller:
        raise timeout_error(request_id)
    if stalled:
        return E.ServerError(
            f"WaveSpeed did not finish its {during} reply within {cap:.0f} s (a stalled connection); "
            "retries ran out, try again later.",
            request_id=request_id,
        )
    return E.ServerError(
        f"Network error talking to WaveSpeed during {during} ({exc.reason}); retries ran out.",
        request_id=request_id,
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, as requests and urllib3 nest them (at most 16 deep)."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and len(chain) < 16:
        chain.append(link)
        args = getattr(link, "args", ())
        inner = getattr(link, "reason", None)
        if not isinstance(inner, BaseException) and args and isinstance(args[0], BaseException):
            inner = args[0]
        link = inner if isinstance(inner, BaseException) else (link.__cause__ or link.__context__)
    return chain


@dataclass(frozen=True)
class Unreached:
    """Why a request never reached the server: the ``layer`` that failed (dns, proxy, tls,
    connect), what happened, what to do, and whether no retry can change it (``final``)."""

    layer: str
    what: str
    hint: str
    final: bool = False


def _first(chain: list[BaseException], kind: type[BaseException] | tuple[type[BaseException], ...]) -> Any:
    return next((e for e in chain if isinstance(e, kind)), None)


def unreached(
    exc: BaseException, url: str, trust: network.Trust | None = None, *, cut: bool = False
) -> Unreached:
    """What failed before any request byte reached the server, in a few words naming the proxy
    (never its credentials) or the certificate problem, and what to do; ``cut``: the request's
    wall-clock window ended it."""
    chain = _chain(exc)
    timed_out = cut or _first(chain, (TimeoutError, requests.exceptions.ConnectTimeout)) is not None
    way = network.route(url)
    target = way.target
    if _first(chain, ProxyError) is not None and way.proxy:
        proxy, fix = f"the proxy {way.shown} ({way.variable})", f"fix {way.variable} or NO_PROXY"
        failed = "Tunnel connection failed: "
        status = next((str(e)[len(failed) :] for e in chain if str(e).startswith(failed)), "")
        if status.startswith(("401", "407")):
            return Unreached(
                "proxy",
                f"{proxy} wants a valid login ({status})",
                f"set {way.variable} to http://user:password@host:port with the proxy's login",
                final=True,
            )
        if status:
            return Unreached(
                "proxy",
                f"{proxy} answered the CONNECT with {status}",
                f"ask its admin to allow {target}, or {fix}",
                final=True,
            )
        if _first(chain, NameResolutionError) is not None:
            return Unreached("proxy", f"{proxy}: its host name does not resolve", fix)
        if _first(chain, ConnectionRefusedError) is not None:
            return Unreached("proxy", f"nothing listens at {proxy}", fix)
        if timed_out:
            return Unreached("proxy", f"{proxy} did not open the tunnel in time", fix)
        return Unreached("proxy", f"{proxy} failed ({type(chain[-1]).__name__})", fix)
    # Through a proxy the rest may be the proxy's doing or the server's: say which way it went.
    through = f" through the proxy {way.shown} ({way.variable})" if way.proxy else ""
    network_hint = f"check your network and {way.variable}" if way.proxy else "check your network"
    verify = _first(chain, ssl.SSLCertVerificationError)
    if verify is not None:
        why = getattr(verify, "verify_message", "") or "not trusted"
        trusting = (trust or network.Trust()).describe()
        return Unreached(
            "tls",
            f"TLS certificate verify failed ({why}), trusting {trusting}",
            "set REQUESTS_CA_BUNDLE to your network's CA file (PEM), or check WAVESPEED_BASE_URL",
            final=True,
        )
    if _first(chain, NameResolutionError) is not None:
        host = target.rpartition(":")[0]
        return Unreached(
            "dns",
            f"DNS lookup of {host} failed",
            "check your network (behind a proxy? set HTTPS_PROXY) and the host in WAVESPEED_BASE_URL",
        )
    if _first(chain, ssl.SSLError) is not None:
        return Unreached("tls", f"TLS handshake failed{through}", network_hint)
    if _first(chain, ConnectionRefusedError) is not None:
        return Unreached("connect", f"connection refused{through}", network_hint)
    if _first(chain, ConnectionResetError) is not None:
        return Unreached("connect", f"connection reset before the request was written{through}", network_hint)
    if timed_out:
        return Unreached("connect", f"connect timeout{through}", network_hint)
    return Unreached("connect", f"{type(exc).__name__} before the request was written{through}", network_hint)


def not_sent(
    exc: BaseException, url: str, trust: network.Trust | None = None, *, cut: bool = False
) -> NotSent:
    """What failed before any request byte was written (the caller adds :data:`NOTHING_SENT` and
    the hint); raises at once (no retry can change it) for an untrusted certificate or a proxy that
    refuses the tunnel."""
    why = unreached(exc, url, trust, cut=cut)
    if why.final:
        parsed = parse_url(url)
        raise E.ServerError(
            f"Could not reach WaveSpeed at {parsed.scheme}://{parsed.netloc}: {why.what}",
            hint=f"{NOTHING_SENT}; {why.hint}",
        )
    return NotSent(why.what, hint=why.hint)

"""The client's request loop: it runs the attempts of one call as the retry rule decides
(../api/retry_rule.py, where the rule is written), inside windows, Cancel and deadlines.

Every request runs inside a wall-clock window, min(its own cap, the caller's deadline)
(``window``); sleeps between attempts are sliced so Cancel and the deadline are seen within
``CANCEL_SLICE_S`` (``sleep``); one exchange (``exchange``) says what happened on the wire:
a reply, nothing sent (``NotSent``, with why in words: ``unreached``) or a break after sending
(``Broken``). The callers (api_session.py, downloads.py) turn those into the rule's outcomes with
the errors they mean; this module holds the mechanics, with no session and no client state.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from urllib3.exceptions import NameResolutionError, ProxyError

from ..api import replies as R
from ..api.replies import MAX_REPLY_BYTES
from ..api.retry_rule import Call, CutBy, Outcome, Stop, cancelled_error, decide, timeout_error
from ..core.vocabulary import CancelCheck
from ..settings import network
from . import transport

T = TypeVar("T")

log = logging.getLogger("wavespeed")

CANCEL_SLICE_S = 0.1  # how often sleeps look at the cancel callback (issue asks for <= 0.25 s)
NOTHING_SENT = "nothing was sent, nothing charged"


class NotSent(Exception):
    """The request provably never reached the server (safe to retry even a submit); ``hint`` says
    what to do if it keeps failing, ``final`` that no retry can change it."""

    def __init__(self, what: str, *, hint: str = "check your network", final: bool = False) -> None:
        self.hint = hint
        self.final = final
        super().__init__(what)


class Broken(Exception):
    """The exchange broke after the connection was made; ``fired`` says whether our window did it."""

    def __init__(self, fired: str | None, reason: str) -> None:
        self.fired = fired
        self.reason = reason
        super().__init__(reason)


def cut_by(fired: str | None, by_caller: bool) -> CutBy | None:
    """Who ended an exchange, from its window's ``fired`` and whether the caller's deadline was
    that window's end."""
    if fired == transport.FIRED_CANCEL:
        return CutBy.CANCEL
    if fired == transport.FIRED_DEADLINE:
        return CutBy.DEADLINE if by_caller else CutBy.CAP
    return None


def retrying(call: Call, attempt: Callable[[], T | Outcome], cancel: CancelCheck | None) -> T:
    """Run ``attempt`` until it gives a value or the retry rule says stop (its error is raised);
    Cancel is looked at before each attempt, and the wait between two is slept in slices that see
    Cancel and the deadline."""
    tries = 0
    while True:
        check_cancel(cancel, call.request_id)
        got = attempt()
        if not isinstance(got, Outcome):
            return got
        tries += 1
        step = decide(got, call, tries, time.monotonic())
        if isinstance(step, Stop):
            raise step.error
        log.warning("WaveSpeed %s: %s; retry %d in %.2fs", call.during, got.reason, tries, step.wait_s)
        sleep(step.wait_s, cancel=cancel, deadline=call.deadline, request_id=call.request_id)


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
        raise cancelled_error(request_id)


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
        NotSent: no request byte reached the socket (refused, DNS, proxy, connect or TLS failure;
            ``final`` for a TLS certificate ``trust`` does not cover or a proxy that refuses the
            tunnel).
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
    the hint); ``final`` (no retry can change it) for an untrusted certificate or a proxy that
    refuses the tunnel."""
    why = unreached(exc, url, trust, cut=cut)
    return NotSent(why.what, hint=why.hint, final=why.final)

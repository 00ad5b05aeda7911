"""HTTP plumbing under the client: wall-clock deadlines that really end a request, Cancel that frees
the worker, and a last check that the API key only goes to the configured origin.

Decisions, and why:

* **Deadlines.** requests' ``timeout`` bounds each socket read, so a server sending one byte a
  second never trips it. :func:`guard` opens a window (deadline, cancel) for the calling thread;
  every socket the thread's connections use inside it (new ones at ``connect``, pooled ones at
  ``request``) is attached to it. One daemon watchdog thread looks every ``WATCH_INTERVAL_S`` and
  shuts a window's sockets down (``SHUT_RDWR``) when its deadline passes or its cancel check turns
  true; the blocked read returns at once and the caller turns ``Guard.fired`` into a typed error.
  The watchdog sleeps while no window is open.
* **Sent or not.** A failed submit may have been paid only if request bytes reached the socket.
  The connections write every request byte through :meth:`_SendCounted.send`, which adds what the
  kernel accepted to the window's ``Guard.sent``; a TLS, DNS or connect failure leaves it at 0, so
  the caller knows "nothing was sent" from the bytes themselves, not from an exception's type.
  The CONNECT a proxy tunnel opens with is not counted: it goes to the proxy, not to WaveSpeed.
* **Key origin.** :class:`GuardedAdapter` refuses (typed ConfigError, before any connection) to
  send a request that carries ``Authorization`` anywhere but the configured ``Origin`` (settings/origin.py),
  over https or loopback http; this holds whatever a caller or a redirect does to the URL. The check
  is on the request's own URL, the target, never on a proxy's address.
* **Proxies and trust.** The adapter, not each caller, picks every request's route
  (settings/network.py: the environment's proxies and NO_PROXY, read explicitly), so API calls,
  uploads and downloads all take it; plain http to loopback never takes one, so the key (which goes
  over plain http to loopback only) never reaches a proxy in clear. Through a proxy
  the pools are the same guarded ones, so deadlines and Cancel hold inside a tunnel too. With no CA
  bundle named, https pools verify with one shared context: the OS trust store (truststore) plus
  certifi's bundle, loaded once.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..core.errors import ConfigError
from ..core.vocabulary import CancelCheck
from ..settings import network
from ..settings.origin import Origin

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

WATCH_INTERVAL_S = 0.1

FIRED_DEADLINE = "deadline"
FIRED_CANCEL = "cancel"


class Guard:
    """One request window: the sockets it uses are shut down at ``deadline`` or on cancel."""

    def __init__(self, deadline: float, cancel: CancelCheck | None) -> None:
        self.deadline = deadline
        self.cancel = cancel
        self.fired: str | None = None  # FIRED_DEADLINE or FIRED_CANCEL once the watchdog acted
        self.sent = 0  # request bytes the kernel accepted inside this window (0: nothing was sent)
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if not any(s is sock for s in self._sockets):
                self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def fire(self, reason: str) -> None:
        with self._lock:
            if self.fired:
                return
            self.fired = reason
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def due(self, now: float) -> str | None:
        if now >= self.deadline:
            return FIRED_DEADLINE
        if self.cancel is not None:
            try:
                if self.cancel():
                    return FIRED_CANCEL
            except Exception:  # a broken cancel check must not kill the watchdog
                return None
        return None


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the TLS object stays untouched (the worker
    # thread may be inside it), only the file descriptor is shut, which wakes that thread.
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """The single thread that enforces every open Guard."""

    def __init__(self) -> None:
        self._guards: set[Guard] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, g: Guard) -> None:
        with self._cond:
            self._guards.add(g)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wavespeed-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, g: Guard) -> None:
        with self._cond:
            self._guards.discard(g)

    def open_guards(self) -> int:
        with self._cond:
            return len(self._guards)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._guards:
                    self._cond.wait()
                guards = list(self._guards)
            now = time.monotonic()
            for g in guards:
                if g.fired is None:
                    reason = g.due(now)
                    if reason is not None:
                        g.fire(reason)
            time.sleep(WATCH_INTERVAL_S)


WATCHDOG = _Watchdog()
_local = threading.local()


@contextlib.contextmanager
def guard(deadline: float, cancel: CancelCheck | None = None) -> Iterator[Guard]:
    """Bound everything this thread sends and reads inside the block by ``deadline`` (monotonic)
    and ``cancel``; nested windows are not supported (the inner one replaces the outer)."""
    g = Guard(deadline, cancel)
    previous = getattr(_local, "guard", None)
    _local.guard = g
    WATCHDOG.add(g)
    try:
        yield g
    finally:
        WATCHDOG.remove(g)
        _local.guard = previous


def _attach_current(sock: socket.socket | None) -> None:
    g: Guard | None = getattr(_local, "guard", None)
    if g is not None:
        g.attach(sock)


def _note_sent(count: int) -> None:
    g: Guard | None = getattr(_local, "guard", None)
    if g is not None:
        g.sent += count


class _SendCounted(HTTPConnection):
    """Every request byte (urllib3 sends headers and body chunks through ``send``) is written by a
    loop of ``socket.send`` that counts what the kernel took, so a window knows whether anything
    of its request left this process."""

    _tunnelling = False

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()
        counted = not self._tunnelling
        if not isinstance(data, bytes | bytearray | memoryview):
            _note_sent(1 if counted else 0)  # a shape urllib3 never uses: count it as sent (the safe side)
            super().send(data)
            return
        sock = self.sock
        assert sock is not None
        sys.audit("http.client.send", self, data)
        view = memoryview(data).cast("B")
        while view:
            written = sock.send(view)
            _note_sent(written if counted else 0)
            view = view[written:]

    def _tunnel(self) -> None:
        """The proxy's CONNECT: bytes to the proxy, none of the request yet."""
        self._tunnelling = True
        try:
            super()._tunnel()
        finally:
            self._tunnelling = False


class _GuardedHTTPConnection(_SendCounted):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach_current(sock)
        return sock

    def connect(self) -> None:
        super().connect()
        _attach_current(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_current(self.sock)  # a pooled keep-alive connection: no connect() this time
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(HTTPSConnection, _SendCounted):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach_current(sock)  # bounds the TLS handshake too
        return sock

    def connect(self) -> None:
        super().connect()
        _attach_current(self.sock)  # the TLS socket that replaced the raw one

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_current(self.sock)
        super().request(*args, **kwargs)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


_GUARDED_POOLS = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
_system_context: ssl.SSLContext | None = None
_system_lock = threading.Lock()


def system_trust_context() -> ssl.SSLContext:
    """The default trust as one client context, built once per process: the OS trust store
    (truststore) plus certifi's bundle. Only called when truststore imports."""
    global _system_context
    with _system_lock:
        if _system_context is None:
            import certifi
            import truststore

            context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(cafile=certifi.where())
            _system_context = context
        return _system_context


class GuardedAdapter(HTTPAdapter):
    """HTTPAdapter whose connections obey :func:`guard`, whose route is the environment's
    (settings/network.py) and whose Authorization stays at home."""

    def __init__(self, origin: Origin, trust: network.Trust | None = None, **kwargs: Any) -> None:
        self.origin = origin
        self.trust = trust or network.Trust(system=False)
        self.context = system_trust_context() if self.trust.path is None and self.trust.system else None
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_GUARDED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_GUARDED_POOLS)  # deadlines hold inside a tunnel too
        return manager

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: bool | str, cert: str | tuple[str, str] | None = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if verify is True and self.context is not None and host_params.get("scheme") == "https":
            pool_kwargs["ssl_context"] = self.context
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if verify is True and self.context is not None and url.lower().startswith("https"):
            conn.ca_certs = conn.ca_cert_dir = None  # the shared context holds the trust already

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        url = request.url or ""
        if "Authorization" in request.headers and not self.origin.allows(url):
            raise ConfigError(
                "Refused to send the API key to a URL outside the configured WaveSpeed API origin "
                f"({self.origin.base_url}); nothing was sent. Check WAVESPEED_BASE_URL."
            )
        # The key goes over plain http only to loopback (Origin.allows), which never takes a proxy.
        kwargs["proxies"] = network.route(url).proxies
        return super().send(request, *args, **kwargs)

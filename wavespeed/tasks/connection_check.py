"""The connection check an artist can run: one line per layer (DNS, proxy, TLS/CA, the key, the
balance), saying which one fails and what to do. It costs nothing: one GET of the balance path
without the key (does the route reach the API, is its certificate trusted?), then the balance with
the key (is the key accepted, can the account pay?). No task is ever submitted.

Layers are checked in order and a failure stops the ones after it ("not reached"), so the first
FAIL is the one to fix. The same settings the nodes use are read (settings/config.py for the key
and base URL, settings/network.py for the proxy and the CA bundle).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from urllib3.util import parse_url

from ..api.models import model_for
from ..api.retry_rule import RetryPolicy
from ..core import errors as E
from ..net.client import WaveSpeedClient
from ..net.request_loop import Unreached
from ..settings import network
from ..settings.config import resolve_api_key, resolve_base_url

LAYERS = ("DNS", "proxy", "TLS/CA", "key", "balance")
OK, FAIL, SKIP = "ok", "FAIL", "--"
# The key-less first step needs a client, and a client holds a key: this one is never sent (and,
# registered as a secret like any key, shares no 8 characters with a word of a message).
_UNSENT_KEY = "Zq9xUv7kWp3mTn8r"


@dataclass(frozen=True)
class Layer:
    """One layer's verdict: OK, FAIL or SKIP (not reached, or not in the way), and what was found
    or what failed and what to do."""

    name: str
    verdict: str
    text: str

    def line(self) -> str:
        return f"{self.name:<7} {self.verdict:<4} {self.text}"


@dataclass(frozen=True)
class ConnectionReport:
    """The check's verdicts, one per layer in :data:`LAYERS` order."""

    layers: tuple[Layer, ...]

    @property
    def passed(self) -> bool:
        return all(layer.verdict != FAIL for layer in self.layers)

    @property
    def text(self) -> str:
        """One line per layer."""
        return "\n".join(layer.line() for layer in self.layers)

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


def _not_reached(after: str) -> list[Layer]:
    return [
        Layer(name, SKIP, f"not reached (fix {after} first)") for name in LAYERS[LAYERS.index(after) + 1 :]
    ]


def _with(layers: list[Layer], failed: Layer) -> list[Layer]:
    return [*layers, failed, *_not_reached(failed.name)]


def _dns(way: network.Route) -> Layer:
    """Resolve the name this machine must resolve: the proxy's when there is one (the proxy
    resolves the API's), else the API's."""
    api_host = parse_url(way.url).host or ""
    target = parse_url(way.shown).host if way.proxy else None
    host = target or api_host
    what = f"the proxy's host {host} ({way.variable})" if target else host
    try:
        ipaddress.ip_address(host.strip("[]"))
        return Layer("DNS", OK, f"{what} is an address: no lookup needed")
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        fix = f"check {way.variable}" if target else "check your network's DNS and WAVESPEED_BASE_URL"
        if not target:
            fix += "; on a network that only goes out through a proxy, set HTTPS_PROXY"
        return Layer("DNS", FAIL, f"{what} does not resolve ({why}): {fix}")
    addresses = sorted({str(info[4][0]) for info in found})
    extra = f"; the proxy resolves {api_host}" if target else ""
    return Layer("DNS", OK, f"{what} resolves to {', '.join(addresses[:3])}{extra}")


def _route_line(way: network.Route) -> Layer:
    if way.proxy:
        return Layer("proxy", OK, f"{way.shown} ({way.variable}) opened a tunnel to {way.target}")
    if way.bypassed:
        return Layer("proxy", SKIP, f"not used for {way.target} ({way.bypassed})")
    return Layer("proxy", SKIP, f"none set: direct to {way.target}")


def _trust_line(client: WaveSpeedClient) -> Layer:
    if client.origin.scheme == "http":
        return Layer("TLS/CA", SKIP, f"plain http to {client.origin.host} (this machine): no TLS")
    return Layer(
        "TLS/CA", OK, f"the certificate of {client.origin.host} is trusted ({client.trust.describe()})"
    )


def _unreached(layers: list[Layer], way: network.Route, why: Unreached) -> list[Layer]:
    text = f"{why.what}: {why.hint}"
    if why.layer == "tls":
        return _with([*layers, _route_line(way)], Layer("TLS/CA", FAIL, text))
    return _with(layers, Layer("proxy", FAIL, text))


def _account(layers: list[Layer], client: WaveSpeedClient) -> list[Layer]:
    price = model_for("t2i").price_usd  # the default model's
    try:
        usd = client.balance()
    except E.AuthenticationError as exc:
        return _with(layers, Layer("key", FAIL, f"refused: {exc.message}"))
    except E.WaveSpeedError as exc:
        return _with(layers, Layer("key", FAIL, f"could not be checked: {exc.message}"))
    layers.append(Layer("key", OK, "accepted"))
    images = round(usd * 100) // round(price * 100)  # in cents: in floats 12.00 // 0.08 is 149
    if images < 1:
        text = f"${usd:.2f}, less than one image (${price:.2f}): top up on wavespeed.ai"
        return [*layers, Layer("balance", FAIL, text)]
    return [*layers, Layer("balance", OK, f"${usd:.2f}, enough for {images} images at ${price:.2f}")]


def check_connection(*, extra_key_files: Iterable[Path] = (), timeout_s: float = 10.0) -> ConnectionReport:
    """Check every layer between this machine and the API, in order, with the environment's
    settings; never raises for a network or settings problem (each is a FAIL line), never submits
    a task. ``extra_key_files``: key files to read after the usual ones (the pack's own)."""
    return ConnectionReport(tuple(_check(tuple(extra_key_files), timeout_s)))


def _check(extra_key_files: tuple[Path, ...], timeout_s: float) -> list[Layer]:
    try:
        base_url = resolve_base_url()
    except E.ConfigError as exc:
        return _with([], Layer("DNS", FAIL, exc.message))
    way = network.route(base_url + "/api/v3/balance")
    layers = [_dns(way)]
    if layers[0].verdict == FAIL:
        return [*layers, *_not_reached("DNS")]
    try:
        key: str | None = resolve_api_key(extra_files=extra_key_files)
        key_problem = ""
    except E.ConfigError as exc:
        key, key_problem = None, exc.message
    try:
        client = WaveSpeedClient(
            key or _UNSENT_KEY,
            base_url,
            connect_timeout_s=timeout_s,
            read_timeout_s=timeout_s,
            retry=RetryPolicy(attempts=2),
        )
    except E.ConfigError as exc:  # a CA variable naming a file that cannot be read: nothing was tried
        untried = Layer("proxy", SKIP, "not tried (fix TLS/CA first)")
        return _with([*layers, untried], Layer("TLS/CA", FAIL, exc.message))
    with client:
        reached = client.reach(timeout_s=timeout_s)
        if isinstance(reached, Unreached):
            return _unreached(layers, way, reached)
        layers += [_route_line(way), _trust_line(client)]
        if key is None:
            return _with(layers, Layer("key", FAIL, key_problem))
        return _account(layers, client)

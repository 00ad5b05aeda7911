"""Image URLs the API will fetch: refuse, before any spend, what WaveSpeed's servers cannot reach.

A task whose image URL WaveSpeed cannot fetch is accepted (and paid) first and fails later with
task code 1402, so a URL on this machine or this network costs money for nothing. Decisions, and why:

* **One parser: urllib3's** ``parse_url``, the one requests builds its connection from, so the host
  judged here is the host the HTTP stack would see (urllib3 percent-decodes and lowercases it).
  Userinfo (``user@``), backslashes, whitespace and control characters are refused outright:
  parsers disagree about where such an authority ends, and the fetcher is not our parser.
* **Every IPv4 spelling the C resolver accepts** (``2130706433``, ``0x7f.1``, ``127.1``,
  ``0177.0.0.1``) is read with ``socket.inet_aton``, the legacy parser ``getaddrinfo`` applies to
  numeric hosts (it never touches the network); IPv6 literals with ``ipaddress``, unwrapping the
  IPv4 inside IPv4-mapped, 6to4 and NAT64 addresses (Python 3.11.7's ``is_private`` does not).
  A public address spelled in any form but ``a.b.c.d`` is refused too: another parser may read it
  differently.
* **Port 0** is refused: no server can listen there, so the fetch is sure to fail after payment.
* **Only globally routable unicast passes**: loopback, private, link-local, CGNAT (100.64/10),
  reserved, documentation, multicast and unspecified addresses are refused, each by name.
* **Names**: ``localhost``, single-label names (only a local resolver knows them) and the
  special-use suffixes ``.localhost``, ``.local`` (mDNS), ``.internal``, ``.localdomain`` and
  ``.home.arpa`` are refused, and so is a last label that cannot be a top-level domain (``1.2.3.999``).
* **No DNS lookup.** The fetch happens on WaveSpeed's servers, not here: our resolver's answer
  proves nothing about theirs (split-horizon DNS, /etc/hosts, VPNs), it can change between the
  check and the fetch (DNS rebinding), and a lookup would add a network wait to every run and send
  the name to the local resolver. So only what is unreachable by its spelling alone is refused; a
  public name that resolves to a private address is left to WaveSpeed (it fails with 1402).
* **The configured API's own origin is allowed** even when it is local: the API is the fetcher,
  so when ``WAVESPEED_BASE_URL`` is the local emulator (or a dev proxy), its own files are
  reachable for it, and chained edits work offline.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import NamedTuple

from ..core.errors import ConfigError, InvalidRequestError

__all__ = ["MAX_URL_CHARS", "check_image_url", "unreachable_reason"]

MAX_URL_CHARS = 8192
"""Longer than any signed CDN URL seen (S3 presigned URLs run to ~1.5 kB); servers commonly cap a
request line at 8 kB, so a longer URL could not be fetched anyway."""

_FIX = "connect the image to an IMAGE input so the pack uploads it, or use a public https URL"
_LOCAL_SUFFIXES = ("localhost", "local", "internal", "localdomain", "home.arpa")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_DOCUMENTATION = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
_ODD_SPELLING = "odd spelling of "
_AUTHORITY = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:/*([^/?#]*)")
_DEFAULT_PORTS = {"http": 80, "https": 443}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class _FromEnv:
    """Default of ``api_base``: the configured base URL, read only when a URL needs it."""


FROM_ENV = _FromEnv()


def _shown(text: str) -> str:
    """The URL for an error message: short, and with any ``user:password@`` masked."""
    text = re.sub(r"(//)[^/?#]*@", r"\1***@", text)
    return text if len(text) <= 60 else text[:57] + "..."


def _address_reason(addr: Address) -> str | None:
    """Why WaveSpeed cannot fetch from ``addr``, or None for a globally routable unicast address."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            return _address_reason(embedded)
        if addr.is_site_local:
            return "a site-local address"
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_loopback:
        return "loopback, i.e. this machine"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_multicast:
        return "a multicast address"
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return "a shared (CGNAT) address"
    if any(addr in net for net in _DOCUMENTATION):
        return "a documentation address"
    if addr.is_reserved:
        return "a reserved address"
    if addr.is_private:
        return "a private network address"
    if not addr.is_global:
        return "a reserved address"
    return None


def _ipv4(name: str) -> ipaddress.IPv4Address | None:
    """The address a numeric host means to the C resolver (any inet_aton spelling), else None."""
    if not re.fullmatch(r"[0-9a-fx.]+", name):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def _host_reason(host: str) -> str | None:
    """Why ``host`` (as urllib3 parsed it) cannot be fetched from outside, or None."""
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            return "a link-local address with a zone id"
        try:
            return _address_reason(ipaddress.IPv6Address(inner))
        except ValueError:
            return "not a valid IPv6 address"
    name = host[:-1] if host.endswith(".") else host
    v4 = _ipv4(name)
    if v4 is not None:
        reason = _address_reason(v4)
        if reason is None and name != str(v4):
            return f"{_ODD_SPELLING}{v4}"
        return reason
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return "not a valid host name"
    if name == "localhost" or any(name.endswith("." + suffix) for suffix in _LOCAL_SUFFIXES):
        return "a name only this machine or network can resolve"
    if len(labels) == 1:
        return "a single-label name only your local network can resolve"
    if not _TLD.fullmatch(labels[-1]):
        return "not a public host name"
    return None


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return scheme, host.rstrip("."), port or _DEFAULT_PORTS.get(scheme, 0)


def _configured_origin(api_base: str | None | _FromEnv) -> tuple[str, str, int] | None:
    """The API origin exactly as the client reads it (settings/origin.py's parse_origin, the one parser), or None
    when there is none or the client would refuse it (then no URL is let through on its account)."""
    from .origin import parse_origin  # urllib3: not at ComfyUI start-up

    if isinstance(api_base, _FromEnv):
        from .config import resolve_base_url

        try:
            api_base = resolve_base_url()
        except ConfigError:
            return None
    if not api_base:
        return None
    try:
        base = parse_origin(api_base)
    except ConfigError:
        return None
    return _origin(base.scheme, base.host, base.port)


class _Refusal(NamedTuple):
    """Why a URL is refused: ``phrase`` continues "<input> ...", ``advice`` says what to do
    (None: a malformed URL, shown back to the user with an example of a good one)."""

    phrase: str
    advice: str | None = _FIX


def _refusal(url: str, api_base: str | None | _FromEnv) -> _Refusal | None:
    from urllib3.util import parse_url

    if len(url) > MAX_URL_CHARS:
        return _Refusal(f"is {len(url)} characters long, over the {MAX_URL_CHARS} a server accepts")
    if not url.isprintable() or any(c.isspace() for c in url) or "\\" in url:
        return _Refusal("must be an http(s) URL without spaces, control characters or backslashes", None)
    try:
        url.encode("utf-8")
        parts = parse_url(url)
    except (ValueError, UnicodeError):  # LocationParseError is a ValueError
        return _Refusal("must be a valid http(s) URL", None)
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https") or not parts.host:
        return _Refusal("must be an http(s) URL", None)
    if parts.port == 0:  # no server listens on port 0: the task would be paid and fail to fetch
        return _Refusal(
            "has port 0, where no server can listen", "remove ':0' from the URL or use its real port"
        )
    authority = _AUTHORITY.match(url)
    if parts.auth is not None or (authority is not None and "@" in authority.group(1)):
        return _Refusal("carries a user name or password (user@host), which parsers split differently")
    reason = _host_reason(parts.host)
    if reason is None or _configured_origin(api_base) == _origin(scheme, parts.host, parts.port):
        return None
    if reason.startswith(_ODD_SPELLING):
        canonical = reason.removeprefix(_ODD_SPELLING)
        return _Refusal(
            f"writes the address {canonical} as {parts.host}, which parsers read differently",
            f"write it as {canonical}",
        )
    return _Refusal(f"points at {parts.host} ({reason}), which WaveSpeed's servers cannot fetch")


def unreachable_reason(url: str, *, api_base: str | None | _FromEnv = FROM_ENV) -> str | None:
    """Why WaveSpeed could not (or should not be asked to) fetch ``url``, or None if it may well
    be public. Needs no network: see the module docstring. ``api_base`` is the API base URL the
    task goes to (by default the configured one); a URL on that very origin is always allowed.
    """
    refusal = _refusal(url, api_base)
    return None if refusal is None else refusal.phrase


def check_image_url(url: str, label: str, *, api_base: str | None | _FromEnv = FROM_ENV) -> str:
    """The stripped ``url``, or a one-line InvalidRequestError naming the input and what to do."""
    if not isinstance(url, str):
        raise InvalidRequestError(f"{label} must be an http(s) URL (text), got {type(url).__name__}.")
    text = url.strip()
    refusal = _refusal(text, api_base)
    if refusal is None:
        return text
    if refusal.advice is None:
        raise InvalidRequestError(
            f"{label} {refusal.phrase} (e.g. the image_urls output of WaveSpeed Poll Result), "
            f"got {_shown(text)!r}."
        )
    raise InvalidRequestError(f"{label} {refusal.phrase}: {refusal.advice}.")

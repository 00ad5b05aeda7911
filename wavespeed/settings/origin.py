"""The API origin: one parse of ``WAVESPEED_BASE_URL``, by the parser the HTTP stack itself uses.

Why: a guard that reads a URL differently from the library that connects is no guard
(``http://evil:80\\@127.0.0.1:8080`` looks loopback to ``urlsplit`` while urllib3 connects to
``evil``). So the base URL is parsed once with ``urllib3.util.parse_url`` and anything another
parser could read differently is refused outright rather than interpreted: userinfo or any ``@``,
backslashes, whitespace and control characters, ``%`` anywhere (percent-encoded hosts), query,
fragment, IPv6 zone ids, non-ASCII, numeric hosts that are not a canonical dotted quad (``127.1``,
``0x7f.1``), and schemes other than http(s). Plain http is allowed only to a loopback literal or
``localhost``. The parsed :class:`Origin` is what the send-time check compares against.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ..core.errors import ConfigError

DEFAULT_BASE_URL = "https://api.wavespeed.ai"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_PATH = re.compile(r"(/[A-Za-z0-9._~-]*)*")
_RAW_FORBIDDEN = ("@", "\\", "%", "?", "#")


@dataclass(frozen=True)
class Origin:
    """Where the API key may go: scheme, host and port exactly, plus the base URL built from them."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def base_url(self) -> str:
        default = _DEFAULT_PORTS[self.scheme] == self.port
        netloc = self.host if default else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def allows(self, url: str) -> bool:
        """True if ``url`` goes to this exact origin over https, or over http to a loopback host."""
        try:
            parts = parse_url(url)
        except (LocationParseError, ValueError):
            return False
        scheme = (parts.scheme or "").lower()
        if scheme not in _DEFAULT_PORTS or parts.auth:
            return False
        host = (parts.host or "").lower()
        port = parts.port if parts.port is not None else _DEFAULT_PORTS[scheme]
        if (scheme, host, port) != (self.scheme, self.host, self.port):
            return False
        return scheme == "https" or is_loopback_host(host)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal (``[::1]`` included)."""
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bad(url: str, why: str) -> ConfigError:
    # Whatever precedes an "@" may be a password: never echo it.
    masked = re.sub(r"(?<=://)[^/]*@", "***@", url) if "@" in url else url
    shown = "".join(c if c.isprintable() else "?" for c in masked)[:80]
    return ConfigError(
        f"WAVESPEED_BASE_URL {shown!r} is refused ({why}): use a plain URL like {DEFAULT_BASE_URL}."
    )


def _check_host(url: str, host: str) -> str:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _bad(url, "not a valid IPv6 address (zone ids are not allowed)") from None
        return host
    last = host.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _bad(url, "a numeric host must be a plain dotted address like 127.0.0.1") from None
        return host
    if not _HOSTNAME.fullmatch(host):
        raise _bad(url, "the host name has characters a host name cannot have")
    return host


def parse_origin(url: str) -> Origin:
    """Parse a base URL once, strictly; raise ConfigError with a one-line fix for anything else."""
    text = url.strip()
    if not text:
        raise _bad(url, "it is empty")
    if not text.isascii() or any(not c.isprintable() or c.isspace() for c in text):
        raise _bad(url, "it has spaces, control or non-ASCII characters")
    for char in _RAW_FORBIDDEN:
        if char in text:
            what = "user:password@ or an '@'" if char == "@" else repr(char)
            raise _bad(url, f"it contains {what}; the base URL must be scheme://host[:port] only")
    try:
        parts = parse_url(text)
    except (LocationParseError, ValueError):
        raise _bad(url, "it is not a URL") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in _DEFAULT_PORTS:
        raise _bad(url, "it must start with https:// (or http:// for a local emulator)")
    if parts.auth or parts.query is not None or parts.fragment is not None:
        raise _bad(url, "it carries credentials, a query or a fragment")
    host = (parts.host or "").lower()
    if not host:
        raise _bad(url, "it has no host")
    host = _check_host(url, host)
    if parts.port is not None and parts.port < 1:
        raise _bad(url, "the port must be 1-65535")
    path = (parts.path or "").rstrip("/")
    if not _PATH.fullmatch(path):
        raise _bad(url, "the path has characters a base URL path cannot have")
    origin = Origin(scheme, host, parts.port or _DEFAULT_PORTS[scheme], path)
    if scheme == "http" and not origin.is_loopback:
        raise ConfigError(
            f"Refusing to send the API key over plain http to {host}: use https "
            "(plain http is only allowed for 127.0.0.1/localhost, e.g. the local emulator)."
        )
    return origin

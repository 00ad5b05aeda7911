"""The way out to the API: which proxy a request takes and which certificates the pack trusts, read
from the environment as requests and pip read them, but explicitly: the session keeps
``trust_env = False``, so ``.netrc`` is never read and nothing adds credentials behind the pack's back.

Decisions, and why:

* **Proxies** are requests' own reading, per request: ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
  ``ALL_PROXY`` (either case; on Windows and macOS the system proxy settings when none is set) and
  ``NO_PROXY`` (``urllib.request.getproxies`` and ``requests.utils.should_bypass_proxies``, the two
  halves of requests' ``get_environ_proxies``). One exception:
  plain http to a loopback host (the local emulator, the only plain-http API the pack allows) never
  goes through a proxy: the key would cross to the proxy in clear, and a proxy's loopback is not
  this machine's. Over https a proxy only relays an encrypted tunnel (CONNECT host:port): the key
  stays inside TLS, which ends at the API.
* **Proxy credentials** (``http://user:secret@proxy:3128``) are registered as secrets like the key,
  so no error, log line or journal row shows them; messages name a proxy as scheme://host:port.
* **Certificates**: ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE`` (as requests and pip read them),
  then ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` (OpenSSL's): the first one set is the one bundle trusted,
  checked when a client is made (a missing or unreadable bundle is one line, before any request).
  None set: the operating system's trust store (truststore, as pip does since 24.2, where a TLS-
  inspecting company proxy's CA is usually installed) together with certifi's bundle (requests'
  default), so nothing requests trusts is lost; without truststore, certifi alone.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote
from urllib.request import getproxies, getproxies_environment

from requests.utils import should_bypass_proxies
from urllib3.util import parse_url

from ..core.errors import ConfigError, register_secret
from .origin import is_loopback_host

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
SYSTEM_TRUST = "the system store + certifi"
CERTIFI_TRUST = "certifi's bundle"


@dataclass(frozen=True)
class Route:
    """How one URL is reached: directly, or through ``proxy`` (credentials included: never shown)."""

    url: str
    proxy: str | None = field(default=None, repr=False)
    variable: str = ""  # what named the proxy: HTTPS_PROXY, ALL_PROXY, "the system proxy settings"
    bypassed: str = ""  # why a configured proxy is not used: "NO_PROXY", "plain http to loopback"

    @property
    def proxies(self) -> dict[str, str]:
        """The ``proxies`` mapping requests' adapter takes for this URL."""
        if self.proxy is None:
            return {}
        return {parse_url(self.url).scheme or "https": self.proxy}

    @property
    def shown(self) -> str:
        """The proxy as scheme://host:port (no credentials), or "" when the route is direct."""
        return proxy_shown(self.proxy) if self.proxy else ""

    @property
    def target(self) -> str:
        """host:port of the URL, as a proxy's CONNECT names it."""
        parts = parse_url(self.url)
        return f"{parts.host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _with_scheme(proxy: str) -> str:
    """A proxy written ``host:port`` is an http proxy, as requests reads it."""
    return proxy if "://" in proxy else f"http://{proxy}"


def proxy_shown(proxy: str) -> str:
    """``proxy`` as scheme://host:port, credentials left out."""
    parts = parse_url(_with_scheme(proxy))
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.host}{port}"


def _register_credentials(proxy: str) -> None:
    """The user:password of a proxy URL becomes a secret (raw and percent-decoded)."""
    auth = parse_url(_with_scheme(proxy)).auth
    if not auth:
        return
    user, _, password = auth.partition(":")
    for secret in {auth, unquote(auth), password, unquote(password)}:
        register_secret(secret)
    if not password:
        register_secret(unquote(user))


def route(url: str) -> Route:
    """The route requests would take for ``url`` with ``trust_env`` on (see the module docstring),
    read from the environment now; a proxy's credentials are registered as secrets on the way."""
    parts = parse_url(url)
    scheme = (parts.scheme or "").lower()
    # requests.utils.get_environ_proxies is these two calls: the proxies, unless NO_PROXY says not.
    configured = {k: v for k, v in getproxies().items() if k in (scheme, "all") and v}
    for each in configured.values():
        _register_credentials(each)
    proxy = configured.get(scheme) or configured.get("all")
    if not parts.host or proxy is None:
        return Route(url)
    if should_bypass_proxies(url, no_proxy=None):
        return Route(url, bypassed="NO_PROXY")
    if scheme == "http" and is_loopback_host(parts.host):
        return Route(url, bypassed="plain http to loopback")
    from_env = getproxies_environment()
    if from_env.get(scheme) == proxy:
        variable = f"{scheme.upper()}_PROXY"
    elif from_env.get("all") == proxy:
        variable = "ALL_PROXY"
    else:
        variable = "the system proxy settings"
    return Route(url, proxy, variable)


@dataclass(frozen=True)
class Trust:
    """The certificates a client trusts: one named bundle (``variable``, ``path``), or the default."""

    variable: str | None = None
    path: str | None = None
    system: bool = True  # the default includes the OS trust store (truststore importable)

    @property
    def verify(self) -> str | bool:
        """requests' ``verify``: the bundle's path, or True for the default trust."""
        return self.path or True

    def describe(self) -> str:
        """What is trusted, in a few words (the variable's name, not its long path)."""
        if self.variable:
            return self.variable
        return SYSTEM_TRUST if self.system else CERTIFI_TRUST


def _has_truststore() -> bool:
    try:
        import truststore  # noqa: F401
    except ImportError:
        return False
    return True


def trust_from_env(env: Mapping[str, str] | None = None) -> Trust:
    """The trust the environment asks for; a bundle that cannot be read is one ConfigError line.

    Raises:
        ConfigError: a CA variable names a missing file, or a file with no PEM certificate in it.
    """
    env = os.environ if env is None else env
    for variable in CA_VARIABLES:
        path = env.get(variable, "").strip()
        if not path:
            continue
        fix = f"point {variable} at your company's CA bundle (a PEM file), or unset it"
        if variable == "SSL_CERT_DIR" or os.path.isdir(path):
            if not os.path.isdir(path):
                raise ConfigError(f"{variable}={path} is not a folder; nothing was sent: {fix}.")
            return Trust(variable, path)
        try:
            ssl.create_default_context(cafile=path)
        except FileNotFoundError:
            raise ConfigError(f"{variable}={path} does not exist; nothing was sent: {fix}.") from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            why = str(getattr(exc, "reason", None) or type(exc).__name__)
            raise ConfigError(
                f"{variable}={path} holds no readable PEM certificate ({why}); nothing was sent: {fix}."
            ) from None
        return Trust(variable, path)
    return Trust(system=_has_truststore())

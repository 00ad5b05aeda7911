"""Where the API key and the base URL come from — never from a workflow.

Order for the key: the ``WAVESPEED_API_KEY`` environment variable, then the first key file that
exists: ``$WAVESPEED_CONFIG_FILE``, ``~/.config/wavespeed/api_key``, then any file the caller adds
(the node pack adds ``wavespeed_api_key.txt`` in its own folder, which is git-ignored). A key file
holds the key on its first non-comment line, either bare or as ``WAVESPEED_API_KEY=<key>``.

The base URL is ``https://api.wavespeed.ai`` unless ``WAVESPEED_BASE_URL`` says otherwise (tests
and the demo point it at the local emulator). Plain ``http`` is refused unless the host is a
loopback address, so the key can never cross a network in clear text.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError, register_secret

DEFAULT_BASE_URL = "https://api.wavespeed.ai"
ENV_API_KEY = "WAVESPEED_API_KEY"
ENV_BASE_URL = "WAVESPEED_BASE_URL"
ENV_CONFIG_FILE = "WAVESPEED_CONFIG_FILE"

_PLACEHOLDERS = {"", "your-api-key", "your_api_key", "<your key>", "changeme", "xxx", "none", "null"}

MISSING_KEY_HELP = (
    "No WaveSpeed API key found: set the WAVESPEED_API_KEY environment variable before starting "
    "ComfyUI, or put the key in ~/.config/wavespeed/api_key (see the pack's README)."
)


@dataclass(frozen=True)
class Settings:
    """The resolved connection settings; the key is hidden from repr so it cannot leak by printing."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL


def default_key_files(env: Mapping[str, str]) -> list[Path]:
    """Key files checked when the environment variable is not set, in order."""
    files = []
    if env.get(ENV_CONFIG_FILE):
        files.append(Path(env[ENV_CONFIG_FILE]).expanduser())
    files.append(Path("~/.config/wavespeed/api_key").expanduser())
    return files


def _key_from_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a Notepad BOM must not stick to the key
    except (OSError, UnicodeDecodeError):
        return None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" in line:
            line = line.split("=", 1)[1].strip()
        return line.strip("\"'")
    return None


def resolve_api_key(env: Mapping[str, str] | None = None, extra_files: Iterable[Path] = ()) -> str:
    """Return the API key, or raise ConfigError saying where to put it."""
    env = os.environ if env is None else env
    candidates: list[str | None] = [env.get(ENV_API_KEY, "").strip()]
    candidates += [_key_from_file(p) for p in [*default_key_files(env), *extra_files]]
    for key in candidates:
        if key and key.lower() not in _PLACEHOLDERS:
            register_secret(key)
            return key
    raise ConfigError(MISSING_KEY_HELP)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """Normalise ``url`` and refuse one that would send the key in clear text over a network."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"WAVESPEED_BASE_URL must be an http(s) URL like {DEFAULT_BASE_URL}, got {url!r}.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"Refusing to send the API key over plain http to {parts.hostname}: use https "
            "(plain http is only allowed for 127.0.0.1/localhost, e.g. the local emulator)."
        )
    return url


def resolve_base_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return check_base_url(env.get(ENV_BASE_URL) or DEFAULT_BASE_URL)


def load_settings(env: Mapping[str, str] | None = None, extra_files: Iterable[Path] = ()) -> Settings:
    """Key and base URL together, validated; raises ConfigError with a one-line fix."""
    return Settings(api_key=resolve_api_key(env, extra_files), base_url=resolve_base_url(env))

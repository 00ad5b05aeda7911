"""Where the API key and the base URL come from — never from a workflow.

Order for the key: the ``WAVESPEED_API_KEY`` environment variable, then the first key file that
exists: ``$WAVESPEED_CONFIG_FILE``, ``~/.config/wavespeed/api_key``, then any file the caller adds
(the node pack adds ``wavespeed_api_key.txt`` in its own folder, which is git-ignored). A key file
holds the key on its first non-comment line, either bare or as ``WAVESPEED_API_KEY=<key>``. Only a
``NAME=value`` line with an environment-variable-like NAME is split, so a bare base64-like key
ending in ``=`` is kept whole. A key file that group or others can read gets one warning (per file)
naming the ``chmod 600`` that fixes it.

The base URL is ``https://api.wavespeed.ai`` unless ``WAVESPEED_BASE_URL`` says otherwise (tests
and the demo point it at the local emulator). It is parsed once, strictly, by :mod:`.urls`: plain
``http`` is refused unless the host is a loopback address, so the key can never cross a network in
clear text.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ConfigError, register_secret
from .origin import DEFAULT_BASE_URL, parse_origin

log = logging.getLogger("wavespeed")
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


# ``NAME=value`` (optionally ``export NAME=value``) with an env-var-like NAME; the value must not
# start with "=", so a bare base64 key such as ``QUJDRA==`` is never split at its padding. An empty
# value counts as an assignment only for a NAME ending in KEY (``WAVESPEED_API_KEY=``).
_ASSIGNMENT = re.compile(r"(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=\s*([^=\s].*)")
_EMPTY_ASSIGNMENT = re.compile(r"(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*KEY\s*=", re.IGNORECASE)
_warned_files: set[str] = set()
_warned_lock = threading.Lock()


def _warn_if_shared(path: Path) -> None:
    """One warning per file when group or others may read the key (POSIX permissions only)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name != "posix" or not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return
    with _warned_lock:
        if str(path) in _warned_files:
            return
        _warned_files.add(str(path))
    log.warning("WaveSpeed key file %s is readable by other users: run chmod 600 %s", path, path)


def _key_from_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a Notepad BOM must not stick to the key
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ASSIGNMENT.fullmatch(line)
        if match:
            line = match.group(1).strip()
        elif _EMPTY_ASSIGNMENT.fullmatch(line):
            line = ""
        _warn_if_shared(path)
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


def check_base_url(url: str) -> str:
    """Normalise ``url`` (see :func:`.origin.parse_origin`) and refuse one that could expose the key."""
    return parse_origin(url).base_url


def resolve_base_url(env: Mapping[str, str] | None = None) -> str:
    """``WAVESPEED_BASE_URL`` checked and normalised, or the public API."""
    env = os.environ if env is None else env
    return check_base_url(env.get(ENV_BASE_URL) or DEFAULT_BASE_URL)


def load_settings(env: Mapping[str, str] | None = None, extra_files: Iterable[Path] = ()) -> Settings:
    """Key and base URL together, validated; raises ConfigError with a one-line fix."""
    return Settings(api_key=resolve_api_key(env, extra_files), base_url=resolve_base_url(env))

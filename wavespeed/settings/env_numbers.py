"""Numeric settings read from environment variables, checked the same way everywhere.

Apart from config.py (key and base URL) because the poller, the scheduler and the submit wait read
theirs when the pack loads, and config.py pulls in urllib3, which must not load at ComfyUI start-up.
"""

from __future__ import annotations

import math
import os

from ..core.errors import ConfigError


def _number_from_env(name: str) -> tuple[str, float] | None:
    """The variable's text and its value as a float (nan when it is not a number); None when unset
    or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return raw, float(raw)
    except ValueError:
        return raw, math.nan


def positive_float_from_env(name: str, default: float, unit: str) -> float:
    """Environment variable ``name`` as a number; ``default`` when it is unset or blank.

    Raises:
        ConfigError: unless it is a finite number > 0 (``unit`` says what it counts).
    """
    read = _number_from_env(name)
    if read is None:
        return default
    raw, value = read
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a number of {unit} > 0, not {raw!r}.")
    return value


def bounded_float_from_env(name: str, default: float, low: float, high: float, unit: str) -> float:
    """Environment variable ``name`` as a number within [low, high]; ``default`` when unset or blank.

    Why a range and not just > 0: a setting like ``1e-300`` requests per second passes "> 0" yet means
    "never", so a finished task would never be looked at (issue 17 case 8); a huge one means "no limit".

    Raises:
        ConfigError: one line naming the variable, the range and the value read.
    """
    read = _number_from_env(name)
    if read is None:
        return default
    raw, value = read
    if not (low <= value <= high):  # also refuses nan and +-inf
        raise ConfigError(
            f"{name} must be a number of {unit} from {low:g} to {high:g}, not {raw!r}: "
            f"set it in that range or unset it (default {default:g})."
        )
    return value

"""What a test does when something it needs is not installed: skip on a developer's machine, fail
under CI (CI=true), where bootstrap installed everything and a skip would hide a missing check."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere, naming ``reason``."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)

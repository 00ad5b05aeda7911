"""Fixtures of the browser tests: Debian's chromium, checked once before any page is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import require_chromium


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium and the playwright package (skipped when missing; failed under CI=true)."""
    return require_chromium()

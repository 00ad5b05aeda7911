"""Shared pytest fixtures: a fresh WaveSpeed API emulator per test (no ComfyUI needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator import Emulator

TEST_API_KEY = "test-key-0123456789"


@pytest.fixture
def api_key() -> str:
    """The Bearer key the `emulator` fixture accepts (a fixture, so tests need no conftest import)."""
    return TEST_API_KEY


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator on a free loopback port with short (0.2 s) tasks, stopped after the test."""
    emu = Emulator(api_keys=(TEST_API_KEY,), inference_s=0.2)
    emu.start(port=0)
    try:
        yield emu
    finally:
        emu.stop()

"""WaveSpeed Connection Check called as ComfyUI calls it (no ComfyUI here): the report shown under
the node and given as outputs, free (no submit), on every run."""

from __future__ import annotations

import asyncio
import math
from types import ModuleType

import pytest

from emulator import Emulator
from tests.support.node_calls import call, capture_status, node


def test_the_node_reports_every_layer_and_costs_nothing(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = capture_status(pack, monkeypatch)
    report, passed = asyncio.run(call("WaveSpeedConnectionCheck", unique_id="3"))
    assert passed is True
    assert [line.split()[:2] for line in report.splitlines()] == [
        ["DNS", "ok"], ["proxy", "--"], ["TLS/CA", "--"], ["key", "ok"], ["balance", "ok"]
    ]  # fmt: skip
    assert shown == [report]
    assert pack_env.submissions == 0 and [r.route for r in pack_env.requests] == ["balance", "balance"]


def test_a_refused_key_is_the_failing_line(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "not-the-key-Wd5Gh2")
    report, passed = asyncio.run(call("WaveSpeedConnectionCheck"))
    assert passed is False
    failing = [line for line in report.splitlines() if " FAIL " in line]
    assert len(failing) == 1 and failing[0].startswith("key     FAIL refused")


def test_the_node_runs_every_time(pack: ModuleType) -> None:
    assert math.isnan(node("WaveSpeedConnectionCheck").fingerprint_inputs())

"""scripts/live_probe.py without a key: it runs against the emulator, confirms every line the
emulator assumes, refutes the lines a kinder emulator breaks, never writes the key, and spends
nothing when the user says no."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator import KIND, Emulator
from scripts import live_probe


def _rows(report: dict[str, object]) -> dict[str, dict[str, object]]:
    return {str(r["behaviour"]): r for r in report["behaviours"]}  # type: ignore[attr-defined, index]


def test_probe_against_the_emulator_confirms_every_observed_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WAVESPEED_API_KEY", raising=False)
    out = tmp_path / "report.json"
    assert live_probe.main(["--emulator", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert live_probe.EMULATOR_KEY not in text and live_probe.EMULATOR_KEY[6:14] not in text
    report = json.loads(text)
    assert report["target"] == "emulator"
    verdicts = {r["behaviour"]: r["verdict"] for r in report["behaviours"]}
    assert set(verdicts.values()) <= {"confirmed", "not observed"}, verdicts
    assert verdicts["an interrupted sync submit is recovered from the history"] == "confirmed"
    assert report["seen"]["interrupted"].startswith("yes")
    assert sum(v == "confirmed" for v in verdicts.values()) >= 15


def test_probe_refutes_what_a_kinder_server_does(api_key: str) -> None:
    with Emulator(api_keys=(api_key,), inference_s=1.0, **KIND) as kind:
        report = live_probe.run_probe(
            live_probe.Probe(kind.base_url, api_key, cut_s=0.3), Emulator(), log=lambda _: None
        )
    rows = _rows(report)
    for name in (
        "history needs page and page_size (400 without)",
        "history list items: request echo",
        "history list items asked with include_inputs: request echo",
        "task /result: request echo",
        "echo re-encodes 4.0 as 4",
        "unknown body keys echoed back",
        "edit without aspect_ratio of 500x300: output size",
        "error bodies carry data.error",
    ):
        assert rows[name]["verdict"] == "refuted", rows[name]
    assert rows["an interrupted sync submit is recovered from the history"]["verdict"] == "confirmed"


def test_no_means_nothing_is_sent(
    emulator: Emulator, api_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", api_key)
    monkeypatch.setenv("WAVESPEED_BASE_URL", emulator.base_url)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or "n")
    assert live_probe.main(["--out", str(tmp_path / "r.json")]) == 1
    assert "$0.16" in asked[0] and "two" in asked[0]
    assert emulator.requests == [] and not (tmp_path / "r.json").exists()

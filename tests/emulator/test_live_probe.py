"""scripts/live_probe.py without a key: it runs against the emulator, confirms every line the
emulator assumes, refutes the lines a kinder emulator breaks, never writes the key, and spends
nothing when the user says no."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from emulator import KIND, Emulator
from scripts import live_probe, probe_wire


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


# The least kind reading of WAVESPEED_API.md section 13, switch by switch (the emulator's defaults
# once those land): checks of one task under 2 s apart refused, error_code a string, history items
# with inputs only when asked, no echo on /result.
SECTION_13 = {"poll_gap_s": 2.0, "error_code_type": "string", "history_echo": "asked", "result_echo": "none"}


def _probe(emu: Emulator, api_key: str, log: Any = None) -> dict[str, Any]:
    probe = live_probe.Probe(emu.base_url, api_key, cut_s=0.3)
    report: dict[str, Any] = live_probe.run_probe(probe, Emulator(), log=log or (lambda _: None))
    return report


def test_a_section_13_server_is_read_right_and_the_paced_client_is_never_throttled(api_key: str) -> None:
    with Emulator(api_keys=(api_key,), inference_s=0.5, **SECTION_13) as emu:
        report = _probe(emu, api_key)
        charged = emu.submissions
    seen = report["seen"]
    assert seen["checked_twice"]["throttled"] is True and seen["checked_twice"]["first"] == "ok"
    assert seen["client_429s"] == []  # the pack's client keeps the published pace: never throttled
    assert seen["headers_of_429"]  # the probe's own second check, recorded with its headers
    assert seen["spent_usd"] == pytest.approx(0.16) and charged == 2 == len(seen["paid_tasks"])
    assert seen["balance_before"] - seen["balance_after"] == pytest.approx(0.16)
    rows = _rows({"behaviours": live_probe.verdicts(seen, Emulator(**SECTION_13))})  # type: ignore[arg-type]
    # (whether recovery finds the task with no echo on /result is the pack's history search, not the probe)
    recovery = "an interrupted sync submit is recovered from the history"
    assert {r["verdict"] for n, r in rows.items() if n != recovery} <= {"confirmed", "not observed"}, rows
    for name in (
        "a second check of a task 0.5 s after the first is answered 429",
        "error_code is a string",
        "history list items asked with include_inputs: request echo",
        live_probe.SPEND_ROW,
    ):
        assert rows[name]["verdict"] == "confirmed", rows[name]
    against_defaults = _rows(report)  # run_probe compared with Emulator(): its defaults are these readings
    for name in ("a second check of a task 0.5 s after the first is answered 429", "error_code is a string"):
        assert against_defaults[name]["verdict"] == "confirmed", against_defaults[name]


def test_a_bad_value_taken_as_a_task_is_followed_and_counted_in_the_cap(api_key: str) -> None:
    with Emulator(api_keys=(api_key,), inference_s=0.5, bad_values="task") as emu:
        report = _probe(emu, api_key)
        charged, spent = emu.submissions, 100.0 - emu.balance
    seen, rows = report["seen"], _rows(report)
    assert seen["bad_value"]["answer"] == "ok"
    assert seen["bad_value_task"]["status"] == "failed" and seen["bad_value_task"]["code"] == 1401
    assert "edit_skipped" in seen and "bad-value submit" in seen["edit_skipped"]
    assert charged == 2 and spent == pytest.approx(0.16)  # "at most $0.16" holds
    assert rows["a bad value is refused with HTTP 400"]["verdict"] == "refuted"
    assert rows["a bad value taken as a task fails with code 1401"]["verdict"] == "confirmed"
    assert rows[live_probe.SPEND_ROW]["verdict"] == "confirmed"


@pytest.mark.parametrize(
    ("fault", "resent", "paid"),
    [
        ({"kind": "status", "status": 429, "retry_after": 0.05}, True, False),  # WaveSpeed's "not now"
        ({"kind": "envelope_error", "status": 429}, True, False),  # the same inside a 200 envelope
        ({"kind": "status", "status": 503}, False, True),  # may have been accepted
        ({"kind": "html", "status": 502}, False, True),  # a gateway page: the same
    ],
)
def test_a_throttled_or_failed_edit_submit_is_not_read_as_a_refused_key(
    api_key: str, fault: dict[str, Any], resent: bool, paid: bool
) -> None:
    """A 429 is sent again after a pause and never read as "unknown keys refused"; a 5xx or a
    gateway page is counted as paid and never sent again."""
    with Emulator(api_keys=(api_key,), inference_s=0.5) as emu:

        def hook(line: str) -> None:  # the edit is the next submit after image 1
            if line.startswith("interrupted sync submit"):
                emu.inject("submit", **fault, times=10)

        report = _probe(emu, api_key, log=hook)
        edit_posts = [r for r in emu.requests if r.route == "submit" and r.path.endswith("/flux-kontext-max")]
    seen, rows = report["seen"], _rows(report)
    assert rows["unknown body keys accepted (not 400)"]["verdict"] == "not observed"
    assert seen["unknown_key_submit"]["answer"] == ("throttled" if resent else "server error")
    assert len(edit_posts) == (probe_wire.THROTTLE_RETRIES + 1 if resent else 1)
    assert len(seen["paid_tasks"]) == (2 if paid else 1)  # a 5xx counts: it may hide a task
    assert rows[live_probe.SPEND_ROW]["verdict"] == "confirmed"


@pytest.mark.parametrize(
    ("status", "code", "meaning"),
    [
        (200, 200, "ok"),
        (200, None, "ok"),
        (429, None, "throttled"),
        (200, 429, "throttled"),  # WaveSpeed's refusal inside a 200 envelope
        (429, 429, "throttled"),
        (400, 400, "refused"),
        (200, 400, "refused"),
        (401, None, "refused"),
        (404, 404, "refused"),
        (503, None, "server error"),
        (200, 500, "server error"),
        (502, None, "server error"),  # a gateway page: no envelope
        (302, None, "server error"),  # nothing documented to rely on
    ],
)
def test_each_reply_is_read_by_its_status_and_its_envelope_code(
    status: int, code: int | None, meaning: str
) -> None:
    assert probe_wire.answer(status, code) == meaning
    assert probe_wire.envelope_code({"code": str(code)} if code is not None else {}) == code


def test_the_clients_own_429s_are_recorded(api_key: str) -> None:
    """A server stricter than the published pace (3 s between checks of one task) throttles the
    pack's 2 s checks: the probe records each of the client's own 429s, and still ends its steps.
    The task runs 5 s, so a second check is due whatever the load (at 0.5 s, a loaded machine made
    its first check after the task's end, and saw no 429)."""
    with Emulator(api_keys=(api_key,), inference_s=5.0, **{**SECTION_13, "poll_gap_s": 3.0}) as emu:
        report = _probe(emu, api_key)
    lines = report["seen"]["client_429s"]
    assert lines and all("HTTP 429" in line for line in lines)


def test_the_probe_reads_an_output_size_with_the_served_formats_only() -> None:
    """An output that is an EPS file is refused: with every Pillow plugin it was opened as EPS (its
    size read, Ghostscript one load away), as the pack's own decoder never does."""
    from PIL import UnidentifiedImageError

    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 48\n0 0 moveto showpage\n%%EOF\n"
    png = live_probe.png(64, 48)
    probe = SimpleNamespace(
        client=SimpleNamespace(download=lambda url, request_id: {"eps": eps, "png": png}[url])
    )
    assert live_probe.image_size(probe, "png", "t1") == (64, 48)  # type: ignore[arg-type]
    with pytest.raises(UnidentifiedImageError):
        live_probe.image_size(probe, "eps", "t1")  # type: ignore[arg-type]

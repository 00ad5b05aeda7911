"""The emulator by default as the public evidence shows the live API (WAVESPEED_API.md section 12),
and the switches that keep the older, kinder behaviour reachable.

Each test names the evidence line it holds; docs/live-api.md lists them."""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import example, given, settings, strategies as st
from PIL import Image

from emulator import KIND, PREFERRED_KONTEXT_RESOLUTIONS, Emulator, nearest_kontext_size
from emulator.__main__ import _parser, _switches
from emulator.routes.echo import go_time, go_value, parse_time

from .test_emulator import EDIT, MULTI, T2I, Api, gradient, png_bytes

HISTORY = "/api/v3/predictions"


@pytest.fixture
def api(emulator: Emulator, api_key: str) -> Api:
    return Api(emulator, api_key)


def _history(api: Api, **body: Any) -> requests.Response:
    return api.s.post(f"{api.base}{HISTORY}", json=body, timeout=5)


def _items(api: Api, **body: Any) -> list[dict[str, Any]]:
    r = _history(api, page=1, page_size=100, **body)
    assert r.status_code == 200, r.text
    return list(r.json()["data"]["items"])


# --------------------------------------------------------------------------- history query (12.1)


@pytest.mark.parametrize(
    "body",
    [{}, {"page": 1}, {"page_size": 10}, {"page": 0, "page_size": 10}, {"page": 1, "page_size": 101},
     {"page": 1, "page_size": 0}, {"page": "1", "page_size": 10}, {"page": True, "page_size": 10},
     {"page": 1, "page_size": 10, "created_after": "yesterday"}],
)  # fmt: skip
def test_history_needs_page_and_page_size(api: Api, body: dict[str, Any]) -> None:
    r = _history(api, **body)
    assert r.status_code == 400 and r.json()["code"] == 400


def test_history_lenient_switch_defaults_page_and_size(api: Api, emulator: Emulator) -> None:
    api.create(T2I, {"prompt": "p"})
    emulator.configure(history_strict=False)
    r = _history(api)
    assert r.status_code == 200 and r.json()["data"]["total"] == 1


def test_history_filters_newest_first(api: Api, emulator: Emulator) -> None:
    """model, status, created_after / created_before honoured; newest first; pages slice."""
    emulator.configure(inference_s=0.05)
    first = api.create(T2I, {"prompt": "one"})
    time.sleep(0.02)
    cut = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.02)
    emulator.next_tasks(fail="broken", fail_code=1403)
    second = api.create(EDIT, {"prompt": "two", "image": "data:image/png;base64,AAAA"})
    third = api.create(T2I, {"prompt": "three"})
    api.wait(first), api.wait(second), api.wait(third)
    assert [i["id"] for i in _items(api)] == [third, second, first]
    assert [i["id"] for i in _items(api, model=T2I)] == [third, first]
    assert [i["id"] for i in _items(api, status="failed")] == [second]
    assert [i["id"] for i in _items(api, created_after=cut)] == [third, second]
    assert [i["id"] for i in _items(api, created_before=cut)] == [first]
    offset = cut.replace("Z", "+02:00")  # the same instant written two hours east is earlier
    assert [i["id"] for i in _items(api, created_after=offset)] == [third, second, first]
    page2 = _history(api, page=2, page_size=2).json()["data"]
    assert [i["id"] for i in page2["items"]] == [first] and page2["total"] == 3


# --------------------------------------------------------------------------- echo (12.1, 12.2)


def test_list_items_carry_inputs_only_when_asked_and_result_none(api: Api, emulator: Emulator) -> None:
    """By default (13.2) a history item carries ``inputs`` only when the call sends
    ``include_inputs: true``, re-encoded as Go would (keys outside the schema dropped silently, no
    400; 4.0 comes back as 4); a task's ``/result`` carries no echo."""
    emulator.configure(inference_s=0.05)
    sent = {"prompt": "p", "guidance_scale": 4.0, "seed": 3, "not_in_schema": "x", "aspect_ratio": "1:1"}
    r = api.submit(T2I, sent)
    assert r.status_code == 200
    rid = r.json()["data"]["id"]
    assert "input" not in r.json()["data"] and "inputs" not in r.json()["data"]
    done = api.wait(rid)
    assert "input" not in done and "inputs" not in done
    for unasked in (_items(api), _items(api, include_inputs=False), _items(api, include_inputs="true")):
        assert ["input" in i or "inputs" in i for i in unasked] == [False]
    (item,) = _items(api, include_inputs=True)
    assert item["inputs"] == {"aspect_ratio": "1:1", "guidance_scale": 4, "prompt": "p", "seed": 3}
    assert isinstance(item["inputs"]["guidance_scale"], int) and "input" not in item
    assert emulator.task(rid).input == sent  # what the emulator received, for tests


@pytest.mark.parametrize("where", ["history_echo", "result_echo"])
@pytest.mark.parametrize("key", ["none", "input", "inputs"])
def test_echo_switches(api: Api, emulator: Emulator, where: str, key: str) -> None:
    """A kinder switch echoes under its key on every item (asked for or not) or every /result."""
    emulator.configure(inference_s=0.05, **{"history_echo": "none", "result_echo": "none", where: key})
    rid = api.create(T2I, {"prompt": "p", "guidance_scale": 2.0})
    objs = (
        [api.wait(rid)] if where == "result_echo" else [_items(api)[0], _items(api, include_inputs=True)[0]]
    )
    for obj in objs:
        for k in ("input", "inputs"):
            assert (k in obj) == (k == key)
        if key != "none":
            assert obj[key] == {"guidance_scale": 2, "prompt": "p"}


def test_raw_echo_style_keeps_the_bytes_sent(api: Api, emulator: Emulator) -> None:
    emulator.configure(inference_s=0.05, **KIND)
    sent = {"prompt": "p", "guidance_scale": 4.0, "extra": [1.0]}
    rid = api.create(T2I, sent)
    assert api.wait(rid)["input"] == sent and _items(api)[0]["input"] == sent


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
@example(4.0)
@example(1e21)
@example(-0.0)
def test_go_value_keeps_every_number_equal(value: Any) -> None:
    """A Go re-encoding changes spelling, never value: equal after the round trip, ints for whole floats."""
    out = go_value(value)
    assert out == value or (isinstance(value, float) and value != value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        assert isinstance(out, int)


# --------------------------------------------------------------------------- statuses (12.3)


@pytest.mark.parametrize(("end", "code"), [("cancelled", None), ("timeout", 5004)])
def test_cancelled_and_timeout_end_a_task(api: Api, emulator: Emulator, end: str, code: int | None) -> None:
    emulator.configure(inference_s=0.05)
    emulator.next_tasks(end_status=end)
    rid = api.create(T2I, {"prompt": "p"})
    time.sleep(0.1)
    data = api.result(rid).json()["data"]
    assert data["status"] == end and data["outputs"] == [] and data["error"]
    assert data.get("code") == code and isinstance(data["executionTime"], int)
    assert [i["status"] for i in _items(api, status=end)] == [end]
    with pytest.raises(ValueError):
        emulator.next_tasks(end_status="finished")


def test_a_task_can_end_deleted(api: Api, emulator: Emulator) -> None:
    """13.6: ``deleted`` is terminal in the official SDKs; such a task reads ``deleted`` with no
    outputs, and is gone from the history."""
    emulator.configure(inference_s=0.05)
    emulator.next_tasks(end_status="deleted")
    rid = api.create(T2I, {"prompt": "p"})
    time.sleep(0.1)
    data = api.result(rid).json()["data"]
    assert (data["status"], data["outputs"]) == ("deleted", []) and data["error"]
    assert _items(api) == []


def test_deleting_a_finished_task_takes_its_result_and_files(api: Api, emulator: Emulator) -> None:
    """13.6: ``POST /api/v3/predictions/delete {ids}`` answers ``data.deleted_count``; the task then
    reads ``deleted`` and its output URL is gone."""
    emulator.configure(inference_s=0.05)
    rid = api.create(T2I, {"prompt": "p"})
    time.sleep(0.1)
    done = api.result(rid).json()["data"]
    assert done["status"] == "completed" and requests.get(done["outputs"][0], timeout=5).status_code == 200
    r = api.s.post(f"{api.base}/api/v3/predictions/delete", json={"ids": [rid, "0" * 32]}, timeout=5)
    assert r.status_code == 200 and r.json()["data"] == {"deleted_count": 1}
    time.sleep(2.0)  # the published pace between two checks of one task
    assert api.result(rid).json()["data"]["status"] == "deleted"
    assert requests.get(done["outputs"][0], timeout=5).status_code == 404
    assert _items(api) == []
    bad = api.s.post(f"{api.base}/api/v3/predictions/delete", json={"ids": "all"}, timeout=5)
    assert bad.status_code == 400


# --------------------------------------------------------------------------- the polling pace (13.1)


def test_a_check_closer_than_2s_to_the_last_is_refused_and_counts(api: Api, emulator: Emulator) -> None:
    """WaveSpeed asks for "at least 2 seconds between checks of the same task id": a closer check is a 429
    (no task read) and counts as a check itself; other tasks are not affected; ``poll_gap_s=0``
    (the kinder reading) never refuses."""
    a, b = api.create(T2I, {"prompt": "a"}), api.create(T2I, {"prompt": "b"})
    assert api.result(a).status_code == 200 and api.result(b).status_code == 200
    refused = api.result(a)
    assert refused.status_code == 429 and refused.json()["code"] == 429 and a in refused.json()["message"]
    time.sleep(1.5)  # 1.5 s after the refused check, 1.5 + its round trip after the first
    assert api.result(a).status_code == 429 and emulator.throttled_checks == 2
    time.sleep(2.0)
    assert api.result(a).status_code == 200
    emulator.configure(poll_gap_s=0)
    assert [api.result(b).status_code for _ in range(3)] == [200, 200, 200]


def test_error_code_is_a_string_unless_switched(api: Api, emulator: Emulator) -> None:
    """13.8: ``error_code`` is typed as a string by the official clients; ``error_code_type="int"``
    is the older, kinder body."""
    emulator.inject("submit", "status", status=400, error_code=1401)
    body = api.submit(T2I, {"prompt": "p"}).json()
    assert body["error_code"] == "1401" and body["code"] == 400
    emulator.configure(error_code_type="int")
    emulator.inject("submit", "status", status=400, error_code="1401")
    assert api.submit(T2I, {"prompt": "p"}).json()["error_code"] == 1401


def test_moderation_refusal_is_a_failed_task_with_code_1200(api: Api, emulator: Emulator) -> None:
    emulator.configure(inference_s=0.05)
    emulator.next_tasks(moderated=True)
    data = api.wait(api.create(T2I, {"prompt": "p"}))
    assert (data["status"], data["code"]) == ("failed", 1200) and "potentially sensitive" in data["error"]


@pytest.mark.parametrize("digits", [3, 9, 0])
def test_created_at_fraction_digits_vary(api: Api, emulator: Emulator, digits: int) -> None:
    emulator.configure(created_at_digits=digits)
    created = api.s.post(f"{api.base}/api/v3/{T2I}", json={"prompt": "p"}, timeout=5).json()["data"][
        "created_at"
    ]
    frac = created[20:-1] if "." in created else ""
    assert len(frac) <= digits and (digits == 9 or not frac.endswith("0"))
    assert abs(parse_time(created) - time.time()) < 60  # type: ignore[operator]


@pytest.mark.parametrize(
    ("ns", "text"),
    [(1_700_000_000_027_000_000, "2023-11-14T22:13:20.027Z"), (1_700_000_000_920_000_000, "2023-11-14T22:13:20.92Z"),
     (1_700_000_000_000_400_000, "2023-11-14T22:13:20Z")],
)  # fmt: skip
def test_go_time_cuts_trailing_zeros(ns: int, text: str) -> None:
    assert go_time(ns) == text and parse_time(text) == pytest.approx(ns // 1_000_000 / 1000)


# --------------------------------------------------------------------------- error bodies (12.4)


def test_error_body_carries_error_code_and_data_error(api: Api, emulator: Emulator) -> None:
    emulator.inject(
        "submit", "status", status=400, message="Bad Request", detail="seed: bad", error_code=1401
    )
    body = api.submit(T2I, {"prompt": "p"}).json()
    assert body == {
        "code": 400,
        "message": "Bad Request",
        "error_code": "1401",
        "data": {"error": "seed: bad"},
    }
    emulator.configure(error_body="plain")
    body = api.submit(T2I, {"prompt": "p", "seed": "x"}).json()
    assert body["data"] is None and "error_code" not in body and "seed" in body["message"]


# --------------------------------------------------------------------------- output sizes (12.5)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000))
def test_nearest_kontext_size_is_nearest_by_ratio(w: int, h: int) -> None:
    best = nearest_kontext_size(w, h)
    assert best in PREFERRED_KONTEXT_RESOLUTIONS
    assert all(abs(w / h - best[0] / best[1]) <= abs(w / h - a / b) for a, b in PREFERRED_KONTEXT_RESOLUTIONS)


@pytest.mark.parametrize(("h", "w"), [(120, 200), (300, 100), (64, 64), (50, 400)])
def test_edit_size_without_a_ratio_is_the_nearest_kontext_resolution(
    api: Api, emulator: Emulator, h: int, w: int
) -> None:
    emulator.configure(inference_s=0.05)
    url = api.upload(png_bytes(gradient(h, w, 9))).json()["data"]["download_url"]
    for model, body in ((EDIT, {"image": url}), (MULTI, {"images": [url]})):
        out = api.wait(api.create(model, {"prompt": "p", **body}))["outputs"][0]
        size = Image.open(io.BytesIO(requests.get(out, timeout=5).content)).size
        assert size == nearest_kontext_size(w, h) and size in PREFERRED_KONTEXT_RESOLUTIONS


# --------------------------------------------------------------------------- switches


def test_cli_flags_reach_every_switch() -> None:
    assert _switches(_parser().parse_args([])) == {}
    assert _switches(_parser().parse_args(["--kind"])) == KIND
    args = _parser().parse_args(
        ["--history-echo", "inputs", "--result-echo", "none", "--echo-style", "raw", "--history-lenient",
         "--low-balance-status", "402", "--error-body", "plain", "--edit-size", "input",
         "--created-at-digits", "9", "--error-code-type", "int", "--poll-gap-s", "0"]
    )  # fmt: skip
    got = _switches(args)
    assert got == {**KIND, "history_echo": "inputs", "result_echo": "none"}
    Emulator(**got)  # every value is one configure() takes


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("history_echo", "both"),
        ("low_balance_status", 500),
        ("history_strict", 1),
        ("created_at_digits", True),
        ("error_code_type", "float"),
        ("poll_gap_s", -1.0),
    ],
)
def test_configure_refuses_unknown_switch_values(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        Emulator(**{name: value})


def test_default_is_the_least_kind_reading() -> None:
    emu = Emulator()
    assert (emu.history_echo, emu.result_echo, emu.echo_style, emu.history_strict) == (
        "asked",
        "none",
        "go",
        True,
    )
    assert (emu.low_balance_status, emu.error_body, emu.edit_size) == (400, "full", "kontext")
    assert (emu.error_code_type, emu.poll_gap_s) == ("string", 2.0)
    assert np.all([KIND[k] != getattr(emu, k) for k in KIND])

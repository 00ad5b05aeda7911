"""Recovering an interrupted submit when the history does not echo our bytes (WAVESPEED_API.md 12.1-12.2).

The matching is pure (wavespeed/journal/history_search.py): any payload, re-encoded as a Go server would (whole
floats as ints, keys sorted, keys outside the schema dropped), still matches; any sent key with
another value does not. The lookup runs against the emulator in each echo mode."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import example, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.api.body_params import wait_keys
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.models import model_for, model_of
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.journal import history_search as H
from wavespeed_kontext_pack.wavespeed.journal.task_records import params_hash
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from emulator.routes.echo import echo_of, go_value

MODEL_TEXT_TO_IMAGE = model_for("t2i").id
MODEL_EDIT = model_for("edit").id

T2I_SCHEMA = model_of(MODEL_TEXT_TO_IMAGE).body_keys

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**31), 2**31)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
payloads = st.dictionaries(
    st.sampled_from(sorted(T2I_SCHEMA)) | st.text(min_size=1, max_size=6), values, min_size=1, max_size=8
)


def _go_echo(sent: dict[str, Any]) -> dict[str, Any]:
    return echo_of(sent, T2I_SCHEMA, "go")


@settings(max_examples=300, deadline=None)
@given(payloads)
@example({"prompt": "p", "guidance_scale": 4.0})  # main hashed the raw echo: 4 != 4.0, never found
@example({"prompt": "p", "seed": 3, "not_in_schema": 1})  # main: the dropped key broke the hash
def test_any_payload_go_reencoded_matches(sent: dict[str, Any]) -> None:
    echo = _go_echo(sent)
    assert H.echo_matches(sent, echo, schema=T2I_SCHEMA)
    assert H.echo_matches(sent, dict(sent))  # a raw echo matches too, without a schema


@settings(max_examples=300, deadline=None)
@given(payloads, st.data())
def test_any_sent_key_with_another_value_does_not_match(sent: dict[str, Any], data: st.DataObject) -> None:
    compared = [k for k in sent if k in T2I_SCHEMA and k not in wait_keys()]
    if not compared:
        return
    key = data.draw(st.sampled_from(compared))
    other = data.draw(values.filter(lambda v: not H.same_value(sent[key], v)))
    echo = {**_go_echo(sent), key: go_value(other)}
    assert not H.echo_matches(sent, echo, schema=T2I_SCHEMA)


@given(payloads)
@settings(max_examples=100, deadline=None)
def test_a_sent_schema_key_missing_from_the_echo_does_not_match(sent: dict[str, Any]) -> None:
    kept = [k for k in sent if k in T2I_SCHEMA and k not in wait_keys()]
    if not kept:
        return
    echo = _go_echo(sent)
    del echo[kept[0]]
    assert not H.echo_matches(sent, echo, schema=T2I_SCHEMA)


@pytest.mark.parametrize(
    ("sent", "echoed", "same"),
    [(4.0, 4, True), (1, True, False), (0, False, False), ("4", 4, False), ([1.0, 2], [1, 2.0], True),
     ({"a": 1.5}, {"a": 1.5}, True), ({"a": 1}, {"a": 1, "b": 2}, False), (None, None, True), (2**53 + 1, 2**53, True)],
)  # fmt: skip
def test_same_value(sent: Any, echoed: Any, same: bool) -> None:
    assert H.same_value(sent, echoed) is same


def test_an_image_url_matches_only_itself() -> None:
    """Main let any URL this process had uploaded match ("present is enough"): another image's
    task was handed back. The URL sent is compared like every other value."""
    edit = model_of(MODEL_EDIT).body_keys
    sent = {"prompt": "p", "seed": 5, "image": "https://media/x.png"}
    assert H.echo_matches(sent, dict(sent), schema=edit)
    assert not H.echo_matches(sent, {**sent, "image": "https://media/y.png"}, schema=edit)
    assert not H.echo_matches(sent, {"prompt": "p", "seed": 5}, schema=edit)
    multi = {"prompt": "p", "images": ["https://media/a.png", "https://media/b.png"]}
    assert not H.echo_matches(multi, {**multi, "images": ["https://media/b.png", "https://media/a.png"]})


@settings(max_examples=200, deadline=None)
@given(payloads, st.sampled_from(sorted(T2I_SCHEMA - wait_keys())), values)
def test_an_echo_naming_an_input_we_did_not_send_does_not_match(
    sent: dict[str, Any], key: str, value: Any
) -> None:
    """An aspect_ratio (say) we left out but the candidate had: another request, not ours."""
    if key in sent:
        return
    assert not H.echo_matches(sent, {**_go_echo(sent), key: go_value(value)}, schema=T2I_SCHEMA)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [("2025-05-19T06:09:15.948268264Z", 1747634955.948268), ("2025-05-19T06:09:15.92Z", 1747634955.92),
     ("2025-05-19T06:09:15Z", 1747634955.0), ("2025-05-19T08:09:15.027+02:00", 1747634955.027),
     ("2025-05-19T06:09:15", 1747634955.0)],
)  # fmt: skip
def test_created_epoch_reads_every_fraction_and_offset(text: str, epoch: float) -> None:
    """Main ignored an offset after a long fraction (+02:00 read as UTC)."""
    assert H.created_epoch(text) == pytest.approx(epoch)


@given(st.floats(0, 4e9))
@settings(max_examples=100, deadline=None)
def test_utc_text_is_utc_with_z(epoch: float) -> None:
    text = H.utc_text(epoch)
    assert text.endswith("Z") and abs((H.created_epoch(text) or 0) - epoch) < 0.001


def test_the_history_query_sends_page_size_and_utc_created_after() -> None:
    sent: list[dict[str, Any]] = []

    class Recorder:
        def history_page(self, query: dict[str, Any], **kw: Any) -> list[Any]:
            sent.append(query)
            return []

    got = H.find_submitted(
        Recorder(),  # type: ignore[arg-type]
        model=MODEL_TEXT_TO_IMAGE,
        payload_hash="x",
        since=1_700_000_000.0,
        deadline=time.monotonic() + 5,
        cancel=lambda: False,
    )
    assert got is None
    (query,) = sent
    assert query["page"] == 1 and query["page_size"] == H.PAGE_SIZE and query["model"] == MODEL_TEXT_TO_IMAGE
    assert query["created_after"] == "2023-11-14T22:11:20.000Z"  # since - SKEW_S, in UTC
    assert query["include_inputs"] is True  # as an official CLI revision sent it


def test_unconfirmed_line_stays_short() -> None:
    cands = tuple(H.Candidate("f" * 32, "2025-05-19T06:09:15.92Z", "completed") for _ in range(9))
    text = H.Unconfirmed(cands).text()
    assert text.count("f" * 32) == H.NAMED_CANDIDATES and text.endswith("and 7 more") and len(text) < 140


# --------------------------------------------------------------------------- against the emulator


def _submit(client: WaveSpeedClient, prompt: str, **kw: Any) -> tuple[Prediction, dict[str, Any]]:
    request = KontextRequest(prompt=prompt, seed=5, guidance_scale=4.0, **kw)
    return client.submit(request), request.payload()


def _find(client: WaveSpeedClient, sent: dict[str, Any], since: float, **kw: Any) -> Any:
    return H.find_submitted(
        client,
        model=MODEL_TEXT_TO_IMAGE,
        payload_hash=params_hash(MODEL_TEXT_TO_IMAGE, sent),
        since=since,
        deadline=time.monotonic() + kw.pop("wait_s", 5.0),
        cancel=lambda: False,
        sent=sent,
        **kw,
    )


@pytest.mark.parametrize(
    "mode",
    [{}, {"history_echo": "none", "result_echo": "inputs"}, {"history_echo": "inputs", "result_echo": "none"},
     {"history_echo": "input", "result_echo": "none"},
     {"history_echo": "input", "result_echo": "input", "echo_style": "raw"}],
)  # fmt: skip
def test_find_submitted_in_each_echo_mode(
    emulator: Emulator, client: WaveSpeedClient, mode: dict[str, Any]
) -> None:
    emulator.configure(inference_s=0.05, **mode)
    since = time.time()
    mine, sent = _submit(client, "mine")
    _submit(client, "someone else's")  # newer, same model, other inputs
    found = _find(client, sent, since)
    assert isinstance(found, Prediction) and found.id == mine.id


def test_no_echo_anywhere_names_the_candidates(emulator: Emulator, client: WaveSpeedClient) -> None:
    emulator.configure(inference_s=0.05, history_echo="none", result_echo="none")
    since = time.time()
    first, sent = _submit(client, "a")
    second, _ = _submit(client, "b")
    time.sleep(0.1)
    found = _find(client, sent, since)
    assert isinstance(found, H.Unconfirmed)
    assert [c.id for c in found.candidates] == [second.id, first.id]  # newest first


def test_result_fetches_are_bounded_newest_first(emulator: Emulator, client: WaveSpeedClient) -> None:
    emulator.configure(inference_s=0.0, history_echo="none", result_echo="none")
    since = time.time()
    ids = [_submit(client, f"p{i}")[0].id for i in range(H.MAX_RESULTS + 3)]
    before = len(emulator.requests)
    found = _find(client, {"prompt": "other", "seed": 5}, since)
    fetched = [r.path.split("/")[4] for r in emulator.requests[before:] if r.route == "result"]
    assert fetched == list(reversed(ids))[: H.MAX_RESULTS]
    assert isinstance(found, H.Unconfirmed) and len(found.candidates) == len(ids)


def test_tasks_before_the_window_or_of_another_model_are_not_candidates(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    emulator.configure(inference_s=0.0, history_echo="none", result_echo="none")
    _submit(client, "old")
    since = time.time() + H.SKEW_S + 1  # the old task is before the window
    edit = KontextRequest(prompt="x", model=MODEL_EDIT, image="https://example.com/a.png", seed=5)
    client.submit(edit)
    assert _find(client, {"prompt": "old", "seed": 5}, since) is None


@pytest.mark.parametrize("mode", [{}, {"history_echo": "none", "result_echo": "inputs"}])
def test_a_pro_task_is_found_under_its_own_model_and_keys(
    emulator: Emulator, client: WaveSpeedClient, mode: dict[str, Any]
) -> None:
    """[pro] is a row of the table: its history is asked under its own id, matched on its own keys,
    and the [max] task of the very same payload is never taken for it."""
    emulator.configure(inference_s=0.05, **mode)
    pro = model_for("t2i", "pro").id
    since = time.time()
    mine, sent = _submit(client, "a pro fox", model=pro)
    _submit(client, "a pro fox")  # the same payload on [max], newer
    found = H.find_submitted(
        client,
        model=pro,
        payload_hash=params_hash(pro, sent),
        since=since,
        deadline=time.monotonic() + 5.0,
        cancel=lambda: False,
        sent=sent,
    )
    assert isinstance(found, Prediction) and found.id == mine.id
    assert _find(client, sent, since).id != mine.id  # under [max], the [max] task


@pytest.mark.parametrize("echo", ["none", "asked"])
def test_the_history_is_asked_once_and_never_polled(
    emulator: Emulator, client: WaveSpeedClient, echo: str
) -> None:
    """Main re-read the history every 2 s for up to 90 s while a candidate ran without an echo:
    one history call per recovery now, then at most MAX_RESULTS /result checks, one per candidate,
    whatever the candidates' state."""
    emulator.configure(inference_s=30.0, history_echo=echo, result_echo="none")  # all still running
    since = time.time()
    ids = [_submit(client, f"p{i}")[0].id for i in range(3)]
    before = len(emulator.requests)
    started = time.monotonic()
    found = _find(client, {"prompt": "not any of them", "seed": 5}, since, wait_s=60.0)
    asked = emulator.requests[before:]
    history = [r for r in asked if r.path == "/api/v3/predictions"]
    results = [r.path.split("/")[4] for r in asked if r.route == "result"]
    assert len(history) == 1 and len(asked) == 1 + len(results)
    if echo == "asked":  # every item carried its inputs: none matched, nothing else asked
        assert found is None and results == []
    else:  # no echo on the list: each candidate's /result checked once, newest first
        assert isinstance(found, H.Unconfirmed) and results == list(reversed(ids))
    assert time.monotonic() - started < 30.0  # (generous) it did not wait for them to finish


def test_a_candidate_journaled_for_other_inputs_is_never_taken(
    emulator: Emulator, client: WaveSpeedClient
) -> None:
    """The same payload twice (two tasks in the history): the one ``taken`` names (journaled for
    another identity) is skipped without being asked about; ``claim`` refusing passes one over."""
    emulator.configure(inference_s=0.0)
    since = time.time()
    older, sent = _submit(client, "twice")
    newer, _ = _submit(client, "twice")
    assert _find(client, sent, since).id == newer.id
    assert _find(client, sent, since, taken=lambda rid: rid == newer.id).id == older.id
    assert _find(client, sent, since, claim=lambda p: p.id != newer.id).id == older.id
    assert _find(client, sent, since, taken=lambda rid: True) is None

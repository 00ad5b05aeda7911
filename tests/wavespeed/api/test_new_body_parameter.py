"""A new optional body parameter is one row of the table (wavespeed/api/body_params.py) and its test.

``output_format`` (WAVESPEED_API.md 3.5: the dev family's file type) is added as a row to a copy of
the table, and nothing else changes: it is checked, sent last in the body, compared in the history
match and counted in the journal's identity; left at its default it is not sent, so every payload
and identity journaled before it stays the same; every node kind lists it after its saved widgets,
ComfyUI shows it on every paid node after the inputs saved workflows hold, and a Generate run against
the emulator sends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from wavespeed_kontext_pack.wavespeed.api import body_params as B, models as M
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest, request_values
from wavespeed_kontext_pack.wavespeed.core.errors import ValidationError
from wavespeed_kontext_pack.wavespeed.journal import history_search as H
from wavespeed_kontext_pack.wavespeed.journal.task_records import params_hash

from emulator import Emulator
from tests.support.comfy_probe import run_in_comfy
from tests.support.node_calls import generate
from tests.wavespeed.api.test_request_table import PINNED

NODE_KINDS: tuple[B.NodeKind, ...] = ("t2i", "edit", "multi", "batch")
OUTPUT_FORMAT = B.Param(
    "output_format",
    str,
    None,
    options=("jpeg", "png"),
    left_out=(None,),
    widgets={
        kind: B.Widget(
            "output_format", "The file type of the image.", label="file type", left_out_choice="auto"
        )
        for kind in NODE_KINDS
    },
)


@pytest.fixture
def with_output_format(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The table with the new row appended (a copy: the module's own table is put back after)."""
    monkeypatch.setattr(B, "PARAMS", (*B.PARAMS, OUTPUT_FORMAT))
    yield


@pytest.mark.usefixtures("with_output_format")
def test_the_new_row_is_checked_and_sent_last() -> None:
    with pytest.raises(ValidationError) as info:
        KontextRequest(prompt="p", output_format="gif").validate()
    assert str(info.value) == "output_format 'gif' is not supported: use one of jpeg, png."
    body = KontextRequest(prompt="p", seed=3, output_format="png").validate().payload()
    assert list(body) == [
        "prompt",
        "guidance_scale",
        "seed",
        "aspect_ratio",
        "enable_sync_mode",
        "output_format",
    ]
    assert body["output_format"] == "png"


@pytest.mark.usefixtures("with_output_format")
@pytest.mark.parametrize(("values", "body", "identity"), PINNED)
def test_left_at_its_default_nothing_sent_or_journaled_before_changes(
    values: dict[str, Any], body: str, identity: str
) -> None:
    values = dict(values)
    request = KontextRequest(values.pop("model", M.model_for("t2i").id), **values)
    assert params_hash(request.model, request.payload()) == identity  # a re-queue still reuses old tasks
    assert "output_format" not in request.payload()


@pytest.mark.usefixtures("with_output_format")
def test_the_new_row_counts_in_the_identity_and_the_history_match() -> None:
    model = M.model_for("t2i")
    plain = KontextRequest(prompt="p", seed=3).payload()
    sent = KontextRequest(prompt="p", seed=3, output_format="png").payload()
    assert params_hash(model.id, sent) != params_hash(model.id, plain)
    schema = model.body_keys
    assert "output_format" in schema
    assert H.echo_matches(sent, {**sent, "guidance_scale": 3.5}, schema=schema)
    assert not H.echo_matches(sent, {**sent, "output_format": "jpeg"}, schema=schema)  # another task
    assert not H.echo_matches(sent, plain, schema=schema)  # the server kept no output_format: not ours
    assert not H.echo_matches(plain, sent, schema=schema)  # a task that asked for png is not the plain one


@pytest.mark.usefixtures("with_output_format")
def test_every_node_kind_shows_it_after_its_saved_widgets() -> None:
    for kind in NODE_KINDS:
        rows = B.node_params(kind)
        assert rows[-1] is OUTPUT_FORMAT and OUTPUT_FORMAT.widgets[kind].position is None, kind
        assert OUTPUT_FORMAT.widget_default(kind) == "auto"
        assert request_values(kind, {"output_format": "auto"}) == {"output_format": None}
        assert request_values(kind, {"output_format": "png"}) == {"output_format": "png"}


@pytest.mark.usefixtures("with_output_format")
def test_a_generate_run_sends_it(pack: ModuleType, pack_env: Emulator, journal_dir: Path) -> None:
    task, _ = asyncio.run(generate("a fox", seed=11, output_format="png"))
    assert pack_env.task(task.request_id).input["output_format"] == "png"
    task, _ = asyncio.run(generate("a fox", seed=12, output_format="auto"))
    assert "output_format" not in pack_env.task(task.request_id).input


# ComfyUI's V1 view of the paid nodes, with and without the row (added before the nodes are declared).
PROBE = r"""
from scripts.pack_loader import load_nodes, load_pack
load_nodes()  # the node modules, on the comfy_api.latest imported above
pack = load_pack()
B = pack.wavespeed.api.body_params
row = B.Param("output_format", str, None, options=("jpeg", "png"), left_out=(None,), widgets={
    kind: B.Widget("output_format", "The file type of the image.", left_out_choice="auto")
    for kind in ("t2i", "edit", "multi", "batch")})
views = {}
for name, params in (("before", B.PARAMS), ("after", (*B.PARAMS, row))):
    B.PARAMS = params
    nodes = asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
    views[name] = {n.GET_NODE_INFO_V1()["name"]: n.GET_NODE_INFO_V1()["input"] for n in nodes}
print(json.dumps(views))
"""
PAID = ["FluxKontextMaxGenerate", "FluxKontextMaxEdit", "FluxKontextMaxMultiReference", "FluxKontextMaxBatch"]


def test_comfyui_shows_it_after_every_input_saved_workflows_hold() -> None:
    """Saved workflows hold widget values by position, required widgets before optional ones: the new
    widget is the last optional input, so every saved position stays where it was."""
    views = run_in_comfy(PROBE)
    for name in PAID:
        before, after = views["before"][name], views["after"][name]
        assert after["required"] == before["required"], name
        optional = after["optional"]
        assert list(optional) == [*before.get("optional", {}), "output_format"], name
        kind, spec = optional["output_format"]
        assert kind == "COMBO" and spec["options"] == ["auto", "jpeg", "png"] and spec["default"] == "auto"

"""The table of models and body parameters, and the request built from it.

* Today's [max] payloads are sent byte for byte as before the table, and their journal identities
  (params hashes) are the ones journaled before it: a re-queue after the upgrade reuses a task paid
  before it. The bytes and hashes below were computed on main (0f8a1eb) and written here.
* The rows say what WAVESPEED_API.md says (ids, kinds, prices, guidance ranges, reference counts).
* FLUX.1 Kontext [pro]: its guidance range is refused in one line naming the model and the range,
  its payload is the [max] payload under its own id, its price is $0.04.
* Nothing else in the pack writes a model id or reads a body key by name.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.api import body_params as B, models as M
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest, request_values
from wavespeed_kontext_pack.wavespeed.core.errors import ValidationError
from wavespeed_kontext_pack.wavespeed.journal.task_records import params_hash

from scripts.pack_loader import REPO_ROOT

EDIT, MULTI = "wavespeed-ai/flux-kontext-max", "wavespeed-ai/flux-kontext-max/multi"
URL = "https://cdn.example/a.png"

#: (request values, the body as sent on main, its params hash on main)
PINNED: list[tuple[dict[str, Any], str, str]] = [
    (
        {"prompt": "a red fox in snow"},
        '{"prompt":"a red fox in snow","guidance_scale":3.5,"aspect_ratio":"1:1","enable_sync_mode":false}',
        "30f9cea5ef9c49a819b7cc332fd1498aba4928a2c26fcfa6d03e83b08f8e4d72",
    ),
    (
        {"prompt": "a red fox in snow", "seed": 42, "guidance_scale": 4.5, "aspect_ratio": "16:9", "enable_sync_mode": True},
        '{"prompt":"a red fox in snow","guidance_scale":4.5,"seed":42,"aspect_ratio":"16:9","enable_sync_mode":true}',
        "f04589b190071ff1311e8df25cb59c99a5ed28033b8f7d604a2f53312ec2ea4d",
    ),
    (
        {"prompt": "猫 · \u2028 line", "seed": 0, "guidance_scale": 20, "aspect_ratio": "9:21"},
        '{"prompt":"猫 · \u2028 line","guidance_scale":20.0,"seed":0,"aspect_ratio":"9:21","enable_sync_mode":false}',
        "9818dca15860093b344bd8a894c392874eb89bb0839a110f73f4cba9fc37dcd3",
    ),
    (
        {"model": EDIT, "prompt": "make it night", "seed": 7, "guidance_scale": 3.5, "aspect_ratio": None, "image": URL},
        '{"prompt":"make it night","guidance_scale":3.5,"seed":7,"image":"https://cdn.example/a.png","enable_sync_mode":false}',
        "5210f4e8ea6b3315c0418bfccf31996911c8f01a0bd6cba5b989064f43ebf63d",
    ),
    (
        {"model": EDIT, "prompt": "make it night", "image": URL},
        '{"prompt":"make it night","guidance_scale":3.5,"aspect_ratio":"1:1","image":"https://cdn.example/a.png","enable_sync_mode":false}',
        "6891ee0a4220761b463a013a9b9ab44fb03d8e5f72deb2d7d2c4b82a3672957e",
    ),
    (
        {"model": MULTI, "prompt": "combine", "seed": 2147483647, "guidance_scale": 1.0, "aspect_ratio": None,
         "images": (URL, "sha256:abc")},
        '{"prompt":"combine","guidance_scale":1.0,"seed":2147483647,"images":["https://cdn.example/a.png","sha256:abc"],"enable_sync_mode":false}',
        "c737e2b79978b3b33e108bda439f61d9b2c0eb898727ba375de3f98e951483a4",
    ),
    (
        {"model": MULTI, "prompt": "combine", "seed": -1, "aspect_ratio": "3:4", "enable_sync_mode": True, "images": (URL,)},
        '{"prompt":"combine","guidance_scale":3.5,"aspect_ratio":"3:4","images":["https://cdn.example/a.png"],"enable_sync_mode":true}',
        "beb0527fbd62deb084dc84d49c59da6195f1309aba28bf042a730a24cbbace9c",
    ),
]  # fmt: skip


def _request(values: dict[str, Any]) -> KontextRequest:
    values = dict(values)
    return KontextRequest(values.pop("model", M.model_for("t2i").id), **values)


@pytest.mark.parametrize(("values", "body", "identity"), PINNED)
def test_max_payloads_and_their_hashes_are_those_of_main(
    values: dict[str, Any], body: str, identity: str
) -> None:
    request = _request(values)
    sent = request.payload()
    assert json.dumps(sent, separators=(",", ":"), ensure_ascii=False) == body  # keys in main's order
    assert params_hash(request.model, sent) == identity


def test_the_rows_are_the_documented_models() -> None:
    rows = {
        (m.id, m.family, m.kind, m.price_usd, m.ranges[B.GUIDANCE_SCALE.key], m.max_images) for m in M.MODELS
    }
    assert rows == {
        ("wavespeed-ai/flux-kontext-max/text-to-image", "max", "t2i", 0.08, (1.0, 20.0), 0),
        ("wavespeed-ai/flux-kontext-max", "max", "edit", 0.08, (1.0, 20.0), 1),
        ("wavespeed-ai/flux-kontext-max/multi", "max", "multi", 0.08, (1.0, 20.0), 5),
        ("wavespeed-ai/flux-kontext-pro/text-to-image", "pro", "t2i", 0.04, (1.0, 10.0), 0),
        ("wavespeed-ai/flux-kontext-pro", "pro", "edit", 0.04, (1.0, 10.0), 1),
        ("wavespeed-ai/flux-kontext-pro/multi", "pro", "multi", 0.04, (1.0, 20.0), 5),
    }
    assert M.DEFAULT_FAMILY == "max" and KontextRequest(prompt="x").model == M.model_for("t2i", "max").id
    schema = {"prompt", "seed", "guidance_scale", "aspect_ratio", "enable_sync_mode", "enable_base64_output",
              "num_images", "safety_tolerance", "enable_safety_checker"}  # fmt: skip
    for m in M.MODELS:  # the keys the history match knows for each model (WAVESPEED_API.md section 3)
        assert m.body_keys == schema | {"edit": {"image"}, "multi": {"images"}, "t2i": set()}[m.kind], m.id


@pytest.mark.parametrize(
    ("kind", "guidance", "refused"),
    [
        ("t2i", 10.5, True),
        ("edit", 10.5, True),
        ("edit", 10.0, False),
        ("multi", 15.0, False),
        ("multi", 20.5, True),
    ],
)
def test_pro_guidance_is_refused_in_one_line_naming_the_model_and_its_range(
    kind: B.Kind, guidance: float, refused: bool
) -> None:
    model = M.model_for(kind, "pro")
    request = KontextRequest(model.id, prompt="p", guidance_scale=guidance).with_references(
        [URL] * model.max_images
    )
    if not refused:
        request.validate(api_base="https://api.wavespeed.ai")
        return
    with pytest.raises(ValidationError) as info:
        request.validate(api_base="https://api.wavespeed.ai")
    low, high = model.ranges[B.GUIDANCE_SCALE.key]
    where = "" if high == 20.0 else f" for FLUX.1 Kontext [pro] {M.KIND_NAMES[kind]}"
    assert (
        str(info.value)
        == f"guidance_scale {guidance} is out of range{where}: use {low}..{high} (default 3.5)."
    )


def test_max_guidance_refusal_is_worded_as_on_main() -> None:
    with pytest.raises(ValidationError) as info:
        KontextRequest(prompt="p", guidance_scale=20.5).validate()
    assert str(info.value) == "guidance_scale 20.5 is out of range: use 1.0..20.0 (default 3.5)."


@pytest.mark.parametrize("kind", ["t2i", "edit", "multi"])
def test_a_pro_payload_is_the_max_payload_under_its_own_id_and_price(kind: B.Kind) -> None:
    values = {"prompt": "a fox", "seed": 3, "guidance_scale": 4.0, "aspect_ratio": "4:3"}
    pro, most = M.model_for(kind, "pro"), M.model_for(kind, "max")
    a = KontextRequest(pro.id, **values).with_references([URL] * pro.max_images).validate()
    b = KontextRequest(most.id, **values).with_references([URL] * most.max_images).validate()
    assert a.payload() == b.payload() and list(a.payload()) == list(b.payload())
    assert (a.price_usd, b.price_usd) == (0.04, 0.08)
    assert params_hash(a.model, a.payload()) != params_hash(b.model, b.payload())  # never reuses the other


def test_a_key_the_model_does_not_take_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"^image is not a parameter of FLUX.1 Kontext \[max\] text-to-image\.$"
    ):
        KontextRequest(prompt="p", image=URL).validate()
    with pytest.raises(ValidationError, match=r"^output_format is not a parameter of"):
        KontextRequest(prompt="p", output_format="png").validate()
    with pytest.raises(ValidationError, match=r"^unknown model 'someone/else'\.$"):
        KontextRequest("someone/else", prompt="p").validate()


def test_references_go_into_the_models_own_field() -> None:
    edit = KontextRequest(EDIT, prompt="p").with_references([URL])
    assert edit.references == (URL,) and edit.payload()["image"] == URL
    multi = KontextRequest(MULTI, prompt="p").with_references([URL, "data:image/png;base64,AA=="])
    assert multi.payload()["images"] == [URL, "data:image/png;base64,AA=="]
    t2i = KontextRequest(prompt="p")
    assert t2i.references == () and t2i.with_references([URL]) == t2i


def test_each_node_kind_lists_its_rows_in_saved_widget_order() -> None:
    names = {
        kind: [p.widgets[kind].name for p in B.node_params(kind)]
        for kind in ("t2i", "edit", "multi", "batch")
    }
    assert names == {
        "t2i": ["prompt", "seed", "guidance_scale", "aspect_ratio", "sync_mode"],
        "edit": ["prompt", "seed", "guidance_scale", "aspect_ratio", "sync_mode"],
        "multi": ["prompt", "seed", "guidance_scale", "aspect_ratio", "sync_mode"],
        "batch": ["prompts", "seed", "guidance_scale", "aspect_ratio"],
    }
    assert [p.key for p in B.PARAMS] == [
        "prompt",
        "guidance_scale",
        "seed",
        "aspect_ratio",
        "image",
        "images",
        "enable_sync_mode",
    ]  # fmt: skip  (body order: main's payloads)


def test_widget_values_become_request_values() -> None:
    widgets = {
        "prompt": "p",
        "seed": 4,
        "guidance_scale": 2.0,
        "aspect_ratio": "match input",
        "sync_mode": True,
    }
    assert request_values("edit", widgets) == {
        "prompt": "p", "seed": 4, "guidance_scale": 2.0, "aspect_ratio": None, "enable_sync_mode": True
    }  # fmt: skip
    request = KontextRequest.from_widgets("edit", **widgets).with_references([URL])
    assert "aspect_ratio" not in request.payload()  # "match input": the API keeps the input's shape
    with pytest.raises(ValidationError, match="aspect_ratio 'match input' is not supported"):
        KontextRequest.from_widgets("t2i", **widgets).validate()  # Generate has no such choice
    assert KontextRequest.from_widgets("batch", prompts="one line", seed=1).prompt == "one line"
    with pytest.raises(ValidationError, match="^sync_mode is not a parameter widget of a batch node"):
        KontextRequest.from_widgets("batch", prompts="one line", sync_mode=True)  # Batch never waits in sync
    assert KontextRequest.from_widgets("edit", "pro", prompt="p").model == "wavespeed-ai/flux-kontext-pro"


# --------------------------------------------------------------------------- written once


def _pack_sources(*folders: str, suffix: str = ".py") -> list[Path]:
    return [p for folder in folders for p in sorted((REPO_ROOT / folder).rglob(f"*{suffix}"))]


TABLE = {REPO_ROOT / "wavespeed" / "api" / "models.py", REPO_ROOT / "wavespeed" / "api" / "body_params.py"}


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.text(max_size=8), max_size=3).map(tuple),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from([m.id for m in M.MODELS]),
    values=st.dictionaries(st.sampled_from([p.key for p in B.PARAMS]), _ANY_VALUE, max_size=7),
)
def test_the_body_is_made_for_any_values_and_kept_only_by_a_check_that_passes(
    model: str, values: dict[str, Any]
) -> None:
    """``body_of`` never raises, whatever the values, so a request makes its body and checks it in
    one pass; ``validate`` then keeps exactly that body, or refuses in one line and keeps nothing."""
    rows = M.model_of(model).params
    body = B.body_of(rows, values)
    assert list(body) == [p.key for p in rows if p.key in body]  # the rows' order
    request = KontextRequest(model, **values)
    try:
        request.validate(api_base="https://api.wavespeed.ai")
    except ValidationError as exc:
        assert "\n" not in str(exc) and request.body is None and request.checked_for is None
    else:
        assert dict(request.body or {}) == body == request.payload()
        assert request.checked_for == "https://api.wavespeed.ai"


def test_no_other_module_of_the_pack_writes_a_model_id() -> None:
    sources = (
        _pack_sources("wavespeed", "nodes") + _pack_sources("web", suffix=".js") + [REPO_ROOT / "__init__.py"]
    )
    named = [
        str(path.relative_to(REPO_ROOT))
        for path in sources
        if path not in TABLE and any(m.id in path.read_text(encoding="utf-8") for m in M.MODELS)
    ]
    assert named == []


def _keys_read_by_name(tree: ast.AST) -> set[str]:
    """String constants used as a key: dict literal keys, set literals (key sets), subscripts,
    ``.get``/``.pop`` arguments and the left side of ``in``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        candidates: list[ast.AST] = []
        if isinstance(node, ast.Dict):
            candidates = [k for k in node.keys if k is not None]
        elif isinstance(node, ast.Set):
            candidates = list(node.elts)
        elif isinstance(node, ast.Subscript):
            candidates = [node.slice]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop")
        ):
            candidates = node.args[:1]
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            candidates = [node.left]
        found |= {c.value for c in candidates if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return found


def test_no_other_module_of_the_pack_reads_a_body_key_by_name() -> None:
    keys = {p.key for p in B.PARAMS} | M.SERVER_ONLY_KEYS
    found = {
        str(path.relative_to(REPO_ROOT)): sorted(
            _keys_read_by_name(ast.parse(path.read_text(encoding="utf-8"))) & keys
        )
        for path in _pack_sources("wavespeed", "nodes")
        if path not in TABLE
    }
    assert {path: named for path, named in found.items() if named} == {}

"""The price badge the browser draws equals what the node sends and shows, for any prompts text.

The badge's text comes from web/price.js (the file the browser loads, run here in node through
tests/support/price_text.mjs) applied to the price definition ComfyUI serves (nodes/v3/price_route.py's
``prices()``, read inside ComfyUI after ``comfy_entrypoint``, as the route answers it). For any prompts
text and variations it equals the tasks the Batch node sends x $0.08, and the price the node itself
shows; Generate, Edit and Multi-Reference show $0.08 ($0.04 once their model widget says [pro]), the
free nodes nothing. One long-lived node process answers every example, so Hypothesis stays fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

from emulator import Emulator
from scripts.pack_loader import REPO_ROOT, load_pack
from tests.support.ci import unavailable as _missing
from tests.support.comfy_probe import run_in_comfy
from tests.support.node_calls import call, node

PRICE_JS = REPO_ROOT / "web" / "price.js"
RUNNER = REPO_ROOT / "tests" / "support" / "price_text.mjs"
BATCH = "FluxKontextMaxBatch"

# The definition the route serves, read inside ComfyUI once it has loaded the pack's nodes.
PROBE = r"""
from scripts.pack_loader import load_pack
pack = load_pack()
asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
print(json.dumps(sys.modules[pack.__name__ + ".nodes.shared.price_route"].prices()))
"""


class PriceJs:
    """web/price.js in one node process: one JSON line in, one out."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(RUNNER), str(PRICE_JS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def text(self, definition: dict[str, Any], node: str, widgets: dict[str, Any]) -> str | None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"definition": definition, "node": node, "widgets": widgets}
        self.proc.stdin.write(json.dumps(request) + "\n")  # ASCII: U+2028 travels as \u2028
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert "error" not in reply, reply["error"]
        return reply["text"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def price_js() -> Iterator[PriceJs]:
    try:
        proc = PriceJs()
    except FileNotFoundError:
        _missing("node is not installed: the badge's test needs a JavaScript engine (Node.js 18+)")
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    """The price definition as ComfyUI's server answers it (the badge must be tried in CI)."""
    definition: dict[str, Any] = run_in_comfy(PROBE, missing=_missing)
    return definition


@pytest.fixture(scope="module")
def pack_module() -> ModuleType:
    return load_pack()


def _badge(js: PriceJs, served: dict[str, Any], prompts: str, variations: int) -> str:
    text = js.text(served, BATCH, {"prompts": prompts, "variations": variations, "seed": 3})
    assert text is not None
    return text


# Lines as an artist, a script or a bad paste write them: every line break Python or JavaScript
# knows, every blank either trims, invisible and case-changing characters, emoji.
BREAKS = ["\n", "\r\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
ODD = "\t \xa0\u3000\ufeff\u1680\u2007\u200a\u202f\u205f\x1f\u200b\u2060\u0301\u0130\u03a3\u1e9e\x00🦊🎨"
ODD_TEXT = st.text(alphabet=sorted(set("ab" + ODD + "".join(BREAKS))), max_size=5)
WORDS = st.sampled_from(["a cat", "🦊", "ΣΟΦΟΣ", "İzmir", "x"])
PROMPT_LINE = st.builds(lambda before, word, after: before + word + after, ODD_TEXT, WORDS, ODD_TEXT)
LINE = st.one_of(
    PROMPT_LINE, PROMPT_LINE, ODD_TEXT, st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
)
PROMPTS = st.builds(
    lambda parts, seps: "".join(p + s for p, s in zip(parts, seps, strict=False)),
    st.lists(LINE, min_size=1, max_size=6),
    st.lists(st.sampled_from(BREAKS), min_size=6, max_size=6),
)
VARIATIONS = st.integers(1, 4) | st.integers(1, 85)

# Prompts split where only one language would split them: CR, U+2028, NEL, VT, FF between prompts, lines
# of only NBSP, U+3000 or U+FEFF (JavaScript's trim and Python's strip disagree on U+FEFF).
SPLIT_CASES = [
    ("a cat\ra dog", 1),
    ("a cat\u2028a dog\u2028a fox", 1),
    ("a cat\x85a dog", 2),
    ("a cat\x0ba dog\x0ca fox", 1),
    ("a cat\n\xa0\n\u3000\na dog", 1),
    ("a cat\n\ufeff", 3),
]


def _examples(cases: list[tuple[str, int]]) -> Any:
    def apply(test: Any) -> Any:
        for prompts, variations in reversed(cases):
            test = example(prompts=prompts, variations=variations)(test)
        return test

    return apply


@_examples(SPLIT_CASES)
@given(prompts=PROMPTS, variations=VARIATIONS)
@settings(max_examples=300, deadline=None)
def test_the_badge_is_the_price_of_the_requests_the_node_makes(
    price_js: PriceJs, served: dict[str, Any], pack_module: ModuleType, prompts: str, variations: int
) -> None:
    badge = _badge(price_js, served, prompts, variations)
    errors = pack_module.wavespeed.core.errors
    try:
        requests = pack_module.nodes.batch.batch_requests(prompts, variations, 7, 3.5, "1:1")
    except errors.InvalidRequestError as exc:
        # Refused before anything is paid (no prompt, over the batch bound, a prompt of only invisible
        # characters): the badge is still the price of what the text asks for, as the refusal says.
        tasks = len(pack_module.nodes.shared.pricing.prompt_lines(prompts)) * variations
        assert badge == f"${0.08 * tasks:.2f}/Run"
        assert tasks == 0 or f"is {tasks} tasks" in str(exc) or str(exc).startswith("prompt "), (badge, exc)
        event("refused")
        return
    event("accepted")
    assert badge == f"${sum(r.price_usd for r in requests):.2f}/Run"
    assert badge == f"${0.08 * len(requests):.2f}/Run"


@given(prompts=PROMPTS, variations=st.integers(1, 2))
@example(prompts="a cat\ra dog\u2028a fox", variations=1)
@example(prompts="a cat\n\xa0\n\u3000", variations=2)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_real_batch_pays_for_what_its_badge_showed_and_shows_the_same_price(
    price_js: PriceJs,
    served: dict[str, Any],
    pack_module: ModuleType,
    pack_env: Emulator,
    caplog: pytest.LogCaptureFixture,
    prompts: str,
    variations: int,
) -> None:
    """The node run against the emulator: POSTs counted by the server, price read from its progress."""
    badge = _badge(price_js, served, prompts, variations)
    pack_env.configure(inference_s=0.02)
    before = pack_env.submissions
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="wavespeed")
    try:
        asyncio.run(
            call("FluxKontextMaxBatch", prompts, variations, seed=-1, guidance_scale=3.5, aspect_ratio="1:1")
        )
    except pack_module.wavespeed.core.errors.InvalidRequestError:
        assert pack_env.submissions == before  # refused before anything was paid
        event("refused")
        return
    sent = pack_env.submissions - before
    event(f"sent {min(sent, 5)}{'+' if sent > 5 else ''}")
    assert badge == f"${0.08 * sent:.2f}/Run"
    assert f"batch of {sent} · {badge.removesuffix('/Run')}" in caplog.text


def test_each_paid_node_shows_its_models_price_and_the_free_nodes_none(
    price_js: PriceJs, served: dict[str, Any], pack_module: ModuleType
) -> None:
    models = pack_module.wavespeed.api.models
    for name in ("FluxKontextMaxGenerate", "FluxKontextMaxEdit", "FluxKontextMaxMultiReference"):
        price = models.model_for(node(name).KIND).price_usd
        widgets = {"prompt": "a cat\na dog", "seed": 5}
        assert price_js.text(served, name, widgets) == f"${price:.2f}/Run" == "$0.08/Run", name
    for name in ("WaveSpeedPollResult", "WaveSpeedRecentTasks", "SaveImage"):
        assert price_js.text(served, name, {"timeout_s": 600}) is None, name
    assert sorted(served["nodes"]) == sorted(
        ["FluxKontextMaxGenerate", "FluxKontextMaxEdit", "FluxKontextMaxMultiReference", BATCH]
    )


def test_the_badge_follows_the_model_chosen_on_the_node(
    price_js: PriceJs, served: dict[str, Any], pack_module: ModuleType
) -> None:
    """Each rule carries every family's price for the node's model, from the table: a node whose model
    widget says [pro] shows $0.04 a task; [max], no model widget or an unknown choice, $0.08."""
    models = pack_module.wavespeed.api.models
    pro, most = models.FAMILIES["pro"], models.FAMILIES["max"]
    for name in ("FluxKontextMaxGenerate", "FluxKontextMaxEdit", "FluxKontextMaxMultiReference"):
        assert price_js.text(served, name, {"model": pro}) == "$0.04/Run", name
        assert price_js.text(served, name, {"model": most}) == "$0.08/Run", name
        assert (
            price_js.text(served, name, {})
            == price_js.text(served, name, {"model": "[ultra]"})
            == "$0.08/Run"
        )
    batch = {"prompts": "a cat\na dog\na fox", "variations": 2}
    assert price_js.text(served, BATCH, {**batch, "model": pro}) == "$0.24/Run"
    assert price_js.text(served, BATCH, batch) == "$0.48/Run"
    assert models.family_prices("t2i") == {most: 0.08, pro: 0.04}


def test_a_count_widget_is_all_it_takes_for_the_badge_to_follow_it(
    price_js: PriceJs, served: dict[str, Any], pack_module: ModuleType
) -> None:
    """A node that gains a ``count`` widget gets a rule multiplying by it, and the badge follows."""
    pricing = pack_module.nodes.shared.pricing
    rule = pricing.price_rule({"FLUX.1 Kontext [max]": 0.08}, ["prompt", "seed", "count"])
    assert rule == {
        "unit_usd": 0.08,
        "per": ["count"],
        "model_input": "model",
        "unit_by_model": {"FLUX.1 Kontext [max]": 0.08},
    }
    definition = {**served, "nodes": {"WithCount": rule}}
    for count, text in ((1, "$0.08/Run"), (3, "$0.24/Run"), (4, "$0.32/Run")):
        assert price_js.text(definition, "WithCount", {"prompt": "x", "count": count}) == text


def test_the_definition_is_pythons_line_breaks_and_whitespace_plus_bom(pack_module: ModuleType) -> None:
    """LINE_BREAK breaks where str.splitlines always has, BLANKS is str.isspace plus U+FEFF, and the
    badge's NOT_BLANK class holds exactly the rest, read by Python's re (no engine needed)."""
    pricing = pack_module.nodes.shared.pricing
    breaks, not_blank = re.compile(pricing.LINE_BREAK), re.compile(pricing.NOT_BLANK)
    for c in map(chr, range(sys.maxunicode + 1)):
        assert len(breaks.split("a" + c + "b")) == len(("a" + c + "b").splitlines()), hex(ord(c))
        assert (c in pricing.BLANKS) == (c.isspace() or c == "\ufeff") == (not not_blank.match(c)), hex(
            ord(c)
        )
    assert len(breaks.split("a\r\nb")) == 2
    assert pricing.prompt_lines(" a cat \r\n\ufeff\n\u3000a dog\u2028\xa0") == ["a cat", "a dog"]

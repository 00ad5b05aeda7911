"""Property (b) of issue 17: the Batch node's price badge equals what the node sends and shows.

For any prompts text and variations, the badge the browser shows (the exact ``price_badge`` ComfyUI
0.33.0 serves in /object_info, the widget values normalised as frontend 1.49.6 normalises them,
evaluated by the JSONata release that frontend bundles, 2.2.1, in node) equals the tasks the node
sends x $0.08, and equals the price the node itself shows. One long-lived node process
(scripts/jsonata/evaluate.js) answers every example, so Hypothesis stays fast.

The engine comes from ``bash scripts/jsonata_engine.sh`` (scripts/test.sh runs it; it needs npm and
the registry, which a test may not reach). Without it these tests skip, and fail under CI=true.
"""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

from emulator import Emulator
from scripts.comfy_harness import ensure_installed
from scripts.pack_loader import REPO_ROOT, load_pack
from tests.support.ci import unavailable as _missing
from tests.support.comfy_probe import run_in_comfy

ENGINE_DIR = REPO_ROOT / ".cache" / "jsonata"
EVALUATOR = REPO_ROOT / "scripts" / "jsonata" / "evaluate.js"
BATCH = "FluxKontextMaxBatch"

# ComfyUI's own V1 view of the pack's V3 Batch node, as its /object_info handler serves it.
PROBE = r"""
import asyncio, json, os, sys
comfy, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy)
os.chdir(comfy)
import comfy_api.latest
sys.path.insert(0, root)
from scripts.pack_loader import load_pack
nodes = asyncio.run(asyncio.run(load_pack().comfy_entrypoint()).get_node_list())
info = next(n for n in nodes if n.GET_SCHEMA().node_id == "FluxKontextMaxBatch").GET_NODE_INFO_V1()
print(json.dumps(info, default=repr))
"""


class Engine:
    """The frontend's badge evaluation in one node process: one JSON line in, one out."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(EVALUATOR), str(ENGINE_DIR)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")  # ASCII: U+2028 travels as \u2028
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert "error" not in reply, reply["error"]
        return reply

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    if not (ENGINE_DIR / "node_modules" / "jsonata" / "package.json").is_file():
        _missing(f"no JSONata engine in {ENGINE_DIR}: run bash scripts/jsonata_engine.sh (needs node + npm)")
    try:
        proc = Engine()
    except FileNotFoundError:
        _missing("node is not installed: the badge needs a JavaScript engine (Node.js 18+)")
    try:
        assert proc.ask({"op": "version"})["version"] == "2.2.1"  # what frontend 1.49.6 bundles
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    """The Batch node's /object_info entry from ComfyUI 0.33.0 itself (price_badge and inputs)."""
    info: dict[str, Any] = run_in_comfy(PROBE, missing=_missing)  # the badge must be tried in CI
    if info.get("price_badge") is None:
        pytest.skip(f"this ComfyUI ({ensure_installed().name}) has no io.PriceBadge: no badge to check")
    return info


@pytest.fixture(scope="module")
def pack_module() -> ModuleType:
    return load_pack()


def _badge(engine: Engine, served: dict[str, Any], prompts: str, variations: int) -> str:
    label: str = engine.ask(
        {
            "op": "badge",
            "price_badge": served["price_badge"],
            "widgets": {"prompts": prompts, "variations": variations},
        }
    )["label"]
    return label


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

# Issue 17 case 4, each failing on the main of then: CR, U+2028, NEL, VT, FF between prompts showed
# $0.08 for 2 or 3 paid tasks; a line of only NBSP or U+3000 counted in the badge but was not sent.
CASE_4 = [
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


@_examples(CASE_4)
@given(prompts=PROMPTS, variations=VARIATIONS)
@settings(max_examples=300, deadline=None)
def test_the_badge_is_the_price_of_the_requests_the_node_makes(
    engine: Engine, served: dict[str, Any], pack_module: ModuleType, prompts: str, variations: int
) -> None:
    badge = _badge(engine, served, prompts, variations)
    errors = pack_module.wavespeed.core.errors
    try:
        requests = pack_module.nodes.batch.batch_requests(prompts, variations, 7, "increment", 3.5, "1:1")
    except errors.InvalidRequestError as exc:
        # Refused before anything is paid (no prompt, over the batch bound, a prompt of only invisible
        # characters): the badge is still the price of what the text asks for, as the refusal says.
        tasks = round(float(badge.removeprefix("$").removesuffix("/Run")) / 0.08)
        assert badge == f"${0.08 * tasks:.2f}/Run"
        assert tasks == 0 or f"is {tasks} tasks" in str(exc) or str(exc).startswith("prompt "), (badge, exc)
        event("refused")
        return
    event("accepted")
    assert badge == f"${sum(r.price_usd for r in requests):.2f}/Run"


@given(prompts=PROMPTS, variations=st.integers(1, 2))
@example(prompts="a cat\ra dog\u2028a fox", variations=1)
@example(prompts="a cat\n\xa0\n\u3000", variations=2)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_real_batch_pays_for_what_its_badge_showed_and_shows_the_same_price(
    engine: Engine,
    served: dict[str, Any],
    pack_module: ModuleType,
    pack_env: Emulator,
    caplog: pytest.LogCaptureFixture,
    prompts: str,
    variations: int,
) -> None:
    """The node run against the emulator: POSTs counted by the server, price read from its progress."""
    import asyncio

    badge = _badge(engine, served, prompts, variations)
    pack_env.configure(inference_s=0.02)
    before = pack_env.submissions
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="wavespeed")
    node = pack_module.nodes.NODES[BATCH]()
    try:
        asyncio.run(
            node.run(prompts, variations, seed=-1, seed_mode="random", guidance_scale=3.5, aspect_ratio="1:1")
        )
    except pack_module.wavespeed.core.errors.InvalidRequestError:
        assert pack_env.submissions == before  # refused before anything was paid
        event("refused")
        return
    sent = pack_env.submissions - before
    event(f"sent {min(sent, 5)}{'+' if sent > 5 else ''}")
    assert badge == f"${0.08 * sent:.2f}/Run"
    assert f"batch of {sent} · {badge.removesuffix('/Run')}" in caplog.text


def test_the_frontend_evaluates_badges_as_the_engine_here_does() -> None:
    """The shipped frontend 1.49.6 bundles jsonata 2.2.1 and normalises widget values with the lines
    scripts/jsonata/evaluate.js copies (its source map holds the TypeScript)."""
    try:
        package = importlib.import_module("comfyui_frontend_package")
    except ImportError:
        _missing("comfyui-frontend-package is not installed (scripts/bootstrap.sh installs 1.49.6)")
    assets = Path(package.__file__).parent / "static" / "assets"
    sources: dict[str, str] = {}
    for path in assets.glob("*.js.map"):
        data = json.loads(path.read_text(encoding="utf-8"))
        sources.update(zip(data["sources"], data.get("sourcesContent") or [], strict=False))
    assert any("node_modules/.pnpm/jsonata@2.2.1/" in name for name in sources)
    (pricing,) = [text for name, text in sources.items() if name.endswith("useNodePricing.ts")]
    ours = EVALUATOR.read_text(encoding="utf-8")
    for line in (
        "if (upperType === 'INT' || upperType === 'FLOAT') {\n    return asFiniteNumber(raw)",
        "  // String/other types - return as lowercase trimmed string\n  return String(raw).trim().toLowerCase()",
        "widgets[dep.name] = normalizeWidgetValue(raw, dep.type)",
        "if (result.type === 'text') {\n    return result.text ?? ''",
    ):
        assert line in pricing, line
    assert "return String(raw).trim().toLowerCase();\n};" in ours


def test_the_frontends_trim_and_lowercase_never_change_the_count(
    engine: Engine, pack_module: ModuleType
) -> None:
    """Every character (surrogates aside): the frontend's STRING normalisation keeps a line break a
    line break, a blank blank (or trims it) and anything else a prompt character, so the badge counts
    on its normalised text the prompts the node sends from the raw text."""
    pricing = pack_module.nodes.shared.pricing
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    normalised = engine.ask({"op": "normalise", "type": "STRING", "values": chars})["values"]
    for raw, seen in zip(chars, normalised, strict=True):
        if len(pricing.prompt_lines("x" + raw + "x")) == 2:  # a line break
            assert seen in ("", raw), hex(ord(raw))
        elif raw in pricing.BLANKS:
            assert all(c in pricing.BLANKS for c in seen), hex(ord(raw))
        else:  # a prompt character stays one: a non-blank, and no break inside
            assert pricing.prompt_lines(seen) == [seen.strip(pricing.BLANKS)], hex(ord(raw))


def test_the_definition_is_pythons_line_breaks_and_whitespace_plus_bom(pack_module: ModuleType) -> None:
    """LINE_BREAK breaks where str.splitlines always has, BLANKS is str.isspace plus U+FEFF, and the
    badge's NOT_BLANK class holds exactly the rest, read by Python's re (no engine needed)."""
    import re

    pricing = pack_module.nodes.shared.pricing
    breaks, not_blank = re.compile(pricing.LINE_BREAK), re.compile(pricing.NOT_BLANK)
    for c in map(chr, range(sys.maxunicode + 1)):
        assert len(breaks.split("a" + c + "b")) == len(("a" + c + "b").splitlines()), hex(ord(c))
        assert (c in pricing.BLANKS) == (c.isspace() or c == "\ufeff") == (not not_blank.match(c)), hex(
            ord(c)
        )
    assert len(breaks.split("a\r\nb")) == 2
    assert pricing.prompt_lines(" a cat \r\n\ufeff\n\u3000a dog\u2028\xa0") == ["a cat", "a dog"]

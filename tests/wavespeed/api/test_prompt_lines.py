"""One reading of line breaks for every node (wavespeed/api/prompt_text.py): a prompt Generate, Edit
and Multi-Reference validate may hold any line break Batch splits on, and Batch (and its badge,
tests/nodes/test_badge_properties.py) sends exactly the lines that reading gives. On main an
old-Mac CR was a line break for Batch and a refused control character for Generate."""

from __future__ import annotations

import asyncio
import re
import sys
from types import ModuleType
from typing import Any

import pytest
from hypothesis import example, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.api import prompt_text as T
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.models import model_for
from wavespeed_kontext_pack.wavespeed.core.errors import ValidationError

from emulator import Emulator
from tests.support.node_calls import generate

MODEL_TEXT_TO_IMAGE = model_for("t2i").id
MODEL_EDIT = model_for("edit").id
MODEL_MULTI = model_for("multi").id

SEPARATORS = ["\r\n", *sorted(T.LINE_BREAK_CHARS)]
IMAGE = "https://media.example/in.png"
# Text a prompt line may hold: letters, punctuation, spaces and tabs (no control, no break).
line_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=12)
one_line_prompts = line_text.map(lambda s: f"a {s} z")


def _validated(prompt: str, model: str) -> None:
    extra: dict[str, Any] = {"image": IMAGE} if model == MODEL_EDIT else {}
    if model == MODEL_MULTI:
        extra = {"images": (IMAGE,)}
    KontextRequest(prompt=prompt, model=model, **extra).validate(api_base="https://api.wavespeed.ai")


def test_the_characters_are_the_ones_the_expression_breaks_on() -> None:
    breaks = re.compile(T.LINE_BREAK)
    assert {
        c for c in map(chr, range(sys.maxunicode + 1)) if len(breaks.split(f"a{c}b")) == 2
    } == T.LINE_BREAK_CHARS


@settings(max_examples=200, deadline=None)
@given(
    st.lists(one_line_prompts, min_size=1, max_size=5),
    st.lists(st.sampled_from(SEPARATORS), min_size=4, max_size=4),
    st.sampled_from([MODEL_TEXT_TO_IMAGE, MODEL_EDIT, MODEL_MULTI]),
)
@example(["a cat z", "a dog z"], ["\r", "\r", "\r", "\r"], MODEL_TEXT_TO_IMAGE)  # refused on main
@example(["a cat z", "a dog z"], ["\x0b", "\x0c", "\x85", "\x1e"], MODEL_EDIT)
def test_what_batch_reads_as_lines_every_node_takes_as_one_prompt(
    lines: list[str], separators: list[str], model: str
) -> None:
    """For any prompts joined by any line breaks (blank lines between): Batch sends exactly those
    prompts, and every single-prompt node accepts the whole text as one multi-line prompt."""
    text = ""
    for n, line in enumerate(lines):
        text += line + separators[n % 4] + (separators[(n + 1) % 4] if n % 2 else "")
    assert T.prompt_lines(text) == [line.strip(T.BLANKS) for line in lines]
    _validated(text, model)


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x1f", "\x7f", "\x9b", "\u202e"])
def test_a_control_character_that_is_no_line_break_is_refused_by_every_node(char: str) -> None:
    for model in (MODEL_TEXT_TO_IMAGE, MODEL_EDIT, MODEL_MULTI):
        with pytest.raises(ValidationError, match="position 2"):
            _validated(f"a{char}b", model)


def test_generate_and_batch_read_a_cr_prompt_the_same_way(pack: ModuleType, pack_env: Emulator) -> None:
    """The attack: a prompt list with old-Mac CR breaks. Generate sends it as one prompt (main
    refused it), Batch as two, and the badge's expression counts two."""
    text = "a lighthouse at dusk\ra lighthouse at dawn"
    task, _ = asyncio.run(generate(text, seed=4))
    assert pack_env.task(task.request_id).input["prompt"] == text
    requests = pack.nodes.batch.batch_requests(text, 1, 4, 3.5, "1:1")
    assert [r.prompt for r in requests] == ["a lighthouse at dusk", "a lighthouse at dawn"]
    pricing = pack.nodes.shared.pricing
    assert (pricing.LINE_BREAK, pricing.NOT_BLANK) == (T.LINE_BREAK, T.NOT_BLANK)
    assert len([p for p in re.split(pricing.LINE_BREAK, text) if re.search(pricing.NOT_BLANK, p)]) == 2

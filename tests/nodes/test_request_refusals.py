"""Issue 17, case 10(b, c): what a paid request may not hold is refused in one line before any spend.

(b) NUL, ANSI escapes (ESC, CSI), other C0/C1 controls and bidirectional embeddings, overrides and
isolates in a prompt: the line names the character and its position. Tabs and the line breaks every
node reads as such (wavespeed/api/prompt_text.py: LF, CR, CRLF, VT, FF, NEL, ...) are text; the bidi
marks LRM/RLM/ALM are normal in right-to-left writing. (c) An ``image_url`` on port 0, where no
server can listen.
Each is proved before any request: the emulator sees nothing.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import pytest
from hypothesis import example, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.models import model_for
from wavespeed_kontext_pack.wavespeed.api.prompt_text import LINE_BREAK_CHARS
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator
from tests.support.node_calls import call

MODEL_EDIT = model_for("edit").id

REFUSED = [
    c
    for c in [chr(c) for c in range(0x20)]
    + ["\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + list("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    if c != "\t" and c not in LINE_BREAK_CHARS
]
ALLOWED = [
    "\t",
    "\n",
    "\r\n",
    "\r",
    "\x0b",
    "\x0c",
    "\x85",
    "\x1e",
    "\u2028",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u00a0",
    "é",
    "猫",
]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda t: not any(c in t for c in REFUSED)), st.data())
@example("a red fox", None)  # found on main: each of these was sent and paid (see the tests below)
def test_any_refused_character_anywhere_is_named_with_its_position(text: str, data: Any) -> None:
    prompt = "fox " + text
    char = data.draw(st.sampled_from(REFUSED)) if data is not None else "\x00"
    at = data.draw(st.integers(0, len(prompt))) if data is not None else 3
    bad = prompt[:at] + char + prompt[at:]
    with pytest.raises(E.ValidationError) as info:
        KontextRequest(prompt=bad).validate(api_base="http://127.0.0.1:9")
    text_of = str(info.value)
    assert f"U+{ord(char):04X}" in text_of and f"at position {at + 1} " in text_of, text_of
    assert "\n" not in text_of


@pytest.mark.parametrize("allowed", ALLOWED, ids=[f"U+{ord(a[0]):04X}" for a in ALLOWED])
def test_line_breaks_tabs_and_bidi_marks_are_text(allowed: str) -> None:
    KontextRequest(prompt=f"a red{allowed}fox").validate(api_base="http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        ("a red fox\x00 and then secrets", "U+0000 NUL at position 10"),
        ("\x1b[31ma red fox\x1b[0m", "U+001B ESC at position 1 (the start of an ANSI escape"),
        ("a fox, caption: \u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE at position 17"),
        ("a fox\u2066 isolated\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE at position 6"),
        ("a fox\x1fand a unit separator", "U+001F a control character at position 6"),
    ],
)
def test_the_client_refuses_them_before_any_request(
    emulator: Emulator, api_key: str, prompt: str, named: str
) -> None:
    with WaveSpeedClient(api_key, emulator.base_url) as client, pytest.raises(E.ValidationError) as info:
        client.submit(KontextRequest(prompt=prompt))
    assert named in str(info.value)
    assert emulator.requests == [] and emulator.submissions == 0


def test_the_generate_node_refuses_a_nul_before_any_spend(pack: ModuleType, pack_env: Emulator) -> None:
    args = {"seed": 7, "guidance_scale": 3.5, "aspect_ratio": "1:1", "sync_mode": False}
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError) as info:
        asyncio.run(call("FluxKontextMaxGenerate", "a fox\x00", **args))
    assert "U+0000 NUL at position 6" in str(info.value)
    assert pack_env.requests == [] and pack_env.submissions == 0


@pytest.mark.parametrize(
    "url", ["https://example.com:0/a.png", "https://example.com:00/a.png", "http://8.8.8.8:0/a.png"]
)
def test_an_image_url_on_port_0_is_refused(emulator: Emulator, api_key: str, url: str) -> None:
    request = KontextRequest(prompt="edit it", model=MODEL_EDIT, image=url)
    with WaveSpeedClient(api_key, emulator.base_url) as client, pytest.raises(E.InvalidRequestError) as info:
        client.submit(request)
    assert "port 0" in str(info.value) and "\n" not in str(info.value)
    assert emulator.requests == [] and emulator.submissions == 0

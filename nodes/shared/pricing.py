"""The price of a paid node as data: what the node charges by, served to the pack's web extension.

Pure (no ComfyUI import). A node's price is its model's price per output image times every input
named in ``PRICE_MULTIPLIERS`` that the node declares (``price_rule``). ``price_definition`` is the
whole table as JSON-ready data; the web extension fetches it (nodes/v3/price_route.py) and
web/price.js turns it and the node's widget values into the badge's text. The frontend's own
``price_badge`` is not used: it draws only on comfy.org partner nodes, which ours are not.

The Batch node's prompts, and why one definition: the badge counts the prompt lines in the
browser (JavaScript strings), the node splits them in Python, and the two languages
disagree on what a line break and a blank are (``str.splitlines`` breaks on CR, VT, FF, NEL,
U+2028...; ``split("\\n")`` on LF only; ``str.strip`` keeps U+FEFF, JavaScript's ``trim`` removes it). So
neither language's built-ins decide: ``LINE_BREAK`` and ``BLANKS`` are written out here once,
``prompt_lines`` applies them in Python, and web/price.js applies the same two regular
expressions (``LINE_BREAK``, ``NOT_BLANK``) in JavaScript. Both use only what Python's ``re`` and JavaScript's
``RegExp`` read identically (an alternation, character classes of ``\\uXXXX`` escapes, no flags),
so the count cannot depend on either engine's Unicode tables.

* Line breaks: the ones ``str.splitlines`` has always used here (CRLF as one), so a prompt list
  pasted with CR or U+2028 between prompts is still several prompts, as the text box shows it.
* Blanks: Python's whitespace plus U+FEFF. It must hold every character JavaScript's ``trim``
  removes (the frontend trims and lowercases a STRING widget before the expression sees it), or a
  line of U+FEFF would count in Python and not in the badge. A line with anything else is a
  prompt, stripped of blanks; a prompt of only invisible characters (U+200B) counts on both sides
  and is then refused by the request's own check, before anything is paid.
"""

from __future__ import annotations

import re
from typing import Any

#: What ends a prompt line, as a regular expression both engines read the same way.
LINE_BREAK = r"\r\n|[\n\u000b\u000c\r\u001c\u001d\u001e\u0085\u2028\u2029]"
#: What a blank line consists of, and what is stripped from each prompt's ends.
BLANKS = (
    "\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
#: A character that makes a line a prompt (a regular expression, as above).
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in BLANKS) + "]"

_LINE_BREAK = re.compile(LINE_BREAK)


def prompt_lines(text: str) -> list[str]:
    """The prompts a Batch text sends, one per line, each stripped of blanks; blank lines skipped.

    The badge (web/price.js) counts exactly these (``PRICE_MULTIPLIERS["prompts"]``)."""
    return [line.strip(BLANKS) for line in _LINE_BREAK.split(text) if line.strip(BLANKS)]


#: Widgets that multiply the per-image price, and how their value counts: ``number`` as it is, ``lines``
#: as the prompts ``prompt_lines`` finds in the text (web/price.js: lines holding a NOT_BLANK character).
PRICE_MULTIPLIERS: dict[str, str] = {"count": "number", "variations": "number", "prompts": "lines"}


def multipliers_of(input_names: list[str]) -> list[str]:
    """The price-changing widgets among a node's inputs, in PRICE_MULTIPLIERS order."""
    return [name for name in PRICE_MULTIPLIERS if name in input_names]


def price_rule(unit_usd: float, input_names: list[str]) -> dict[str, Any]:
    """One node's price: ``unit_usd`` per task, times each multiplier widget it declares."""
    return {"unit_usd": unit_usd, "per": multipliers_of(input_names)}


def price_definition(rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every paid node's rule by node id, with how widgets count: what web/price.js reads."""
    return {
        "nodes": rules,
        "multipliers": PRICE_MULTIPLIERS,
        "line_break": LINE_BREAK,
        "not_blank": NOT_BLANK,
    }

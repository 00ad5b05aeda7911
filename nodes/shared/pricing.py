"""The price badge expression of a paid node (JSONata, evaluated by the ComfyUI frontend).

Pure (no ComfyUI import) so that tests can build the same expression the V3 schema declares.
The badge is the node's model price per output image times every input named in
``PRICE_MULTIPLIERS`` that the node declares; it is plain text in dollars because the frontend
shows ``usd`` results as Comfy credits, which is not what WaveSpeed bills.

The Batch node's prompts, and why one definition: the badge counts the prompt lines in the
browser (JSONata on JavaScript strings), the node splits them in Python, and the two languages
disagree on what a line break and a blank are (``str.splitlines`` breaks on CR, VT, FF, NEL,
U+2028...; JSONata's ``$split(s, "\\n")`` on LF only; ``str.strip`` keeps U+FEFF, JavaScript's
``trim`` removes it). So neither language's built-ins decide: ``LINE_BREAK`` and ``BLANKS`` are
written out here once, ``prompt_lines`` applies them in Python, and the badge applies the same
two regular expressions in JSONata. Both use only what Python's ``re`` and JavaScript's
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

    The badge's JSONata counts exactly these (``PRICE_MULTIPLIERS["prompts"]``)."""
    return [line.strip(BLANKS) for line in _LINE_BREAK.split(text) if line.strip(BLANKS)]


#: Widgets that multiply the per-image price, with their JSONata value (the frontend's widget values).
#: ``prompts`` (the Batch node) counts ``prompt_lines``: lines holding a character not in ``BLANKS``.
PRICE_MULTIPLIERS: dict[str, str] = {
    "count": "widgets.count",
    "variations": "widgets.variations",
    "prompts": f"$count($split(widgets.prompts, /{LINE_BREAK}/)[$contains($, /{NOT_BLANK}/)])",
}


def multipliers_of(input_names: list[str]) -> list[str]:
    """The price-changing widgets among a node's inputs, in PRICE_MULTIPLIERS order."""
    return [name for name in PRICE_MULTIPLIERS if name in input_names]


def price_badge_expr(unit_usd: float, multipliers: list[str]) -> str:
    """Unit price times each multiplier widget, shown as e.g. "$0.08/Run"."""
    usd = " * ".join([repr(unit_usd), *(PRICE_MULTIPLIERS[name] for name in multipliers)])
    return '{"type": "text", "text": "$" & $formatNumber(' + usd + ', "0.00") & "/Run"}'

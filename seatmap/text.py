"""What a human-readable name or label may contain (seat maps, events, tenants).

Names end up in storefronts, tickets, logs and SVG. Two rules:

* no control characters: C0/C1 controls (NUL, newline, escape, ...), the line
  and paragraph separators, and the bidirectional embedding, override and
  isolate characters (they reorder how the text around them is displayed, the
  "Trojan Source" trick). Other format characters stay allowed: the zero-width
  joiner and non-joiner are part of emoji sequences and of Persian and Indic
  spelling.
* something visible: a name made only of whitespace, zero-width and other
  format characters, or the blank-looking fillers (Hangul fillers, the braille
  blank) is blank.

:func:`text_problem` is pure; each caller reports the problem its own way (a
seat-map violation, an ``InvalidRequest`` naming the field).
"""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls (Unicode category Cc), line/paragraph separators, bidi controls
FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# letters and symbols that render as nothing: Hangul fillers, halfwidth filler, braille blank
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cf" or ch in _BLANK_LOOKING


def is_blank(value: str) -> bool:
    """True when ``value`` shows nothing: empty, or only whitespace and invisible characters."""
    if value.isascii():  # the common case, without a look-up per character
        return not value.strip()
    return all(_invisible(ch) for ch in value)


def control_character(value: str) -> str | None:
    """The first forbidden control character of ``value`` as ``U+XXXX``, or None."""
    found = FORBIDDEN.search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"


def text_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable name, or None when it is."""
    bad = control_character(value)
    if bad is not None:
        return f"must not contain control characters (found {bad})"
    if is_blank(value):
        return "must contain a visible character"
    return None

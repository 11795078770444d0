"""Text inside server-rendered SVG: escaped, XML-valid, shortened with the whole kept.

Names shown in the dashboard's drawings (parties of a KYC case, tenants) are typed by
tenants: attacker-controlled input. Every string that reaches an SVG goes through
:func:`text` (element content) or :func:`attr` (attribute values), which escape ``& < > "
'`` and replace the characters XML 1.0 forbids (C0 controls other than tab, newline and
carriage return, lone surrogates, U+FFFE and U+FFFF) with U+FFFD, so whatever a name holds
the drawing stays well-formed XML and never becomes markup. Both also make invisible
characters visible (:func:`visible`): a bidirectional override (U+202E) or a zero-width
character in a party's name would otherwise show an officer a name other than the one that
was screened, so each is shown as ``⟨U+202E⟩``. :func:`shorten` cuts a label to a width in
characters, with an ellipsis; the whole text goes into a ``<title>`` beside it.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
_SPECIAL = re.compile("[&<>\"']")


def clean(value: str) -> str:
    """``value`` with every character XML 1.0 cannot hold replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", value)


def visible(value: str) -> str:
    """``value`` with its format characters (Unicode category Cf: bidirectional controls,
    zero-width spaces and joiners, soft hyphens) and C1 controls written as ``⟨U+XXXX⟩``,
    so what is shown is what was typed."""
    if value.isascii():
        return value
    return "".join(
        f"\u27e8U+{ord(ch):04X}\u27e9"
        if unicodedata.category(ch) == "Cf" or 0x80 <= ord(ch) <= 0x9F
        else ch
        for ch in value
    )


def text(value: str) -> str:
    """``value`` escaped for an element's content, invisible characters made visible."""
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group(0)], clean(visible(value)))


def attr(value: str) -> str:
    """``value`` escaped for a double- or single-quoted attribute (newlines kept as spaces)."""
    return text(" ".join(value.split()))


def shorten(value: str, width: int) -> str:
    """``value`` on one line, at most ``width`` characters (an ellipsis marks a cut)."""
    one_line = " ".join(value.split())
    if width < 2 or len(one_line) <= width:
        return one_line[: max(width, 0)] if width < 2 else one_line
    return one_line[: width - 1].rstrip() + "\u2026"


def num(value: float | Decimal) -> str:
    """A coordinate: at most two decimals, no exponent, no trailing zeros."""
    rounded = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return "0" if rounded in ("-0", "") else rounded

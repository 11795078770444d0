"""The text of a declared purpose in *skeleton* form, where obfuscations meet their plain spelling.

The purpose classifier (:mod:`gpulease.compliance.purpose_classifier`) reads texts and its
vocabulary through this one normalisation, so the two meet in one form.

Normalisation against obfuscation, applied identically to the text and to the vocabulary
(so the two meet in one *skeleton* form): NFKC; a run under a right-to-left override
(U+202E, to its PDF or the line's end) turned around, as it is shown (U+202E then
"snopaew" is displayed "weapons"); invisible format characters dropped; confusable letters
of other scripts mapped to the Latin ones they imitate (Unicode TR39 ``confusables.txt``,
from ``confusable_homoglyphs``: every single character drawn like a Latin letter, Cherokee,
Lisu, Canadian syllabics...; the Cyrillic and Greek table below decides where they
differ), then ``anyascii``; a backslash and a slash read as "v", two of them, "vv" as "w",
"rn" as "m"; contractions expanded ("isn't" -> "is not"); letters split by punctuation or
spacing joined ("w.e.a.p.o.n", "w e a p o n"); digits and symbols inside a word read as
letters ("w3ap0ns", "@nthr@x"); ``l`` read as ``i`` and doubled letters collapsed (so "1"
for "l" and "mi1itary" meet "military"). Long terms (six letters or more in skeleton) are
also sought in the text with every separator removed ("mi litary", "nerve_agent").

Invariants. Pure and deterministic; never raises on any string; linear in the text's length
(each right-to-left run is looked at twice at most). The confusables table is built once, on
the first text read.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from functools import cache

from anyascii import anyascii

__all__ = ["Token", "collapse", "plain_ascii", "skeleton", "tokenize"]

# Cyrillic and Greek letters drawn like Latin ones (Unicode TR39 confusables.txt, the
# lower- and upper-case letters of those scripts that are prototypes' look-alikes). anyascii
# alone would transliterate them by sound (Cyrillic "р" -> "r"), not by shape.
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
        "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J",
        "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H",
        "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y",
        "Χ": "X",
    }
)  # fmt: skip
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": "i", "|": "i", "+": "t", "l": "i"}
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z0-9@$!|+]+")
_LETTER = re.compile(r"[A-Za-z]")
_CONTRACTION = re.compile(r"(?i)\b(ca|wo|do|does|did|is|are|was|were|has|have|had|should)n't\b")
_CLAUSE_END = frozenset(".;:!?")


def collapse(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)


def skeleton(word: str) -> str:
    """One word's matching form: lower case, digits and symbols read as letters when the
    word has a letter, ``l`` as ``i``, "vv" as "w" and "rn" as "m" (TR39's two-letter
    look-alikes), runs of one letter collapsed."""
    low = word.lower().replace("vv", "w").replace("rn", "m")
    low = low.translate(_LEET) if _LETTER.search(low) else low.replace("l", "i")
    return collapse(low)


_RLO, _PDF = "\u202e", "\u202c"
_EMBEDDINGS = frozenset("\u202a\u202b\u202d\u202e")  # each closed by a PDF
_PARAGRAPH_ENDS = frozenset("\n\r\u2029")
_SLASHES = (("\\/\\/", "w"), ("\\/", "v"))  # a "w" drawn as backslash, slash, twice


def _displayed(text: str) -> str:
    """``text`` in the order it is shown where a right-to-left override turns Latin letters
    around: each override's run (to its matching PDF, or the paragraph's end) reversed,
    embeddings inside it counted. Linear: each character is looked at twice at most."""
    if _RLO not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != _RLO:
            out.append(text[i])
            i += 1
            continue
        depth, j = 1, i + 1
        while j < len(text) and text[j] not in _PARAGRAPH_ENDS:
            if text[j] in _EMBEDDINGS:
                depth += 1
            elif text[j] == _PDF:
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out.append(text[i + 1 : j][::-1])
        i = j + 1 if j < len(text) and text[j] == _PDF else j
    return "".join(out)


@cache
def _lookalikes() -> dict[int, str]:
    """Every single character that TR39 lists as drawn like a Latin letter, to that letter
    (lower case wins a tie); the hand-made Cyrillic and Greek table on top. Built once, on
    the first text read (the data takes a fifth of a second to load: not at import)."""
    from confusable_homoglyphs.confusables import (  # type: ignore[import-untyped]
        confusables_data,
    )

    table: dict[int, str] = {}
    for letter in string.ascii_lowercase + string.ascii_uppercase:
        for entry in confusables_data.get(letter, ()):
            glyph = str(entry["c"]).strip("\u200e\u200f")
            if len(glyph) == 1 and not glyph.isascii():
                table.setdefault(ord(glyph), letter)
    # one more step: drawn like a Latin letter with a mark ("O" and a stroke), or like a
    # Latin letter of another form (a small capital), or like a glyph mapped above
    for char, entries in confusables_data.items():
        if len(char) != 1 or char.isascii() or ord(char) in table:
            continue
        for entry in entries:
            glyph = "".join(c for c in str(entry["c"]) if not unicodedata.combining(c))
            if len(glyph) != 1:
                continue
            if glyph.isascii() and glyph.isalpha():
                table[ord(char)] = glyph
            elif ord(glyph) in table:
                table[ord(char)] = table[ord(glyph)]
            elif unicodedata.name(glyph, "").startswith("LATIN "):
                plain = anyascii(glyph)
                if len(plain) == 1 and plain.isalpha():
                    table[ord(char)] = plain
            if ord(char) in table:
                break
    table.update(_CONFUSABLES)
    return table


def plain_ascii(text: str) -> str:
    text = _displayed(unicodedata.normalize("NFKC", text))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = anyascii(text.translate(_lookalikes()))
    for slashes, letter in _SLASHES:
        text = text.replace(slashes, letter)
    return text


@dataclass(frozen=True, slots=True)
class Token:
    skel: str
    raw: str  # as written, in ASCII (joined when it was split)
    joined: bool  # its letters were split by punctuation or spacing
    break_before: bool  # a clause ends between the previous token and this one


def tokenize(text: str) -> list[Token]:
    """The words of ``text`` in skeleton form, split letters joined (module docstring)."""
    plain = _CONTRACTION.sub(lambda m: m.group(1) + " not", plain_ascii(text))
    pieces: list[tuple[str, bool, bool]] = []  # (raw, joined, break_before)
    pending_break = False
    for chunk in plain.split():
        parts = _WORD.findall(chunk)
        if parts:
            longest = max(len(p) for p in parts)
            if len(parts) >= 2 and (longest == 1 or (len(parts) >= 3 and longest <= 3)):
                pieces.append(("".join(parts), True, pending_break))
            else:
                for i, part in enumerate(parts):
                    pieces.append((part, False, pending_break and i == 0))
            pending_break = False
        if any(ch in _CLAUSE_END for ch in chunk[-2:]) or chunk in _CLAUSE_END:
            pending_break = True
    # spacing: three or more one-letter words in a row are one word ("w e a p o n")
    joined: list[tuple[str, bool, bool]] = []
    i = 0
    while i < len(pieces):
        j = i
        while j < len(pieces) and len(pieces[j][0]) == 1 and (j == i or not pieces[j][2]):
            j += 1
        if j - i >= 3:
            joined.append(("".join(p[0] for p in pieces[i:j]), True, pieces[i][2]))
            i = j
        else:
            joined.append(pieces[i])
            i += 1
    return [Token(skeleton(raw), raw, was_joined, brk) for raw, was_joined, brk in joined]

"""Evidence quotes: verbatim sentences of the transcript, never a fragment cut mid-phrase."""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"[^.?!]+[.?!]*")
_WORD = re.compile(r"[\w']+")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def sentences(text: str) -> list[str]:
    """The text's sentences, verbatim (punctuation kept), in order."""
    return [m.group().strip() for m in _SENTENCE.finditer(text) if m.group().strip()]


def anchor_evidence(text: str, quote: str) -> str:
    """The shortest run of `text`'s sentences that holds most of `quote`'s words.

    A quote taken from a fragment ("to change when an") becomes the settled turn's sentence
    that says it; a quote that no sentence shares a word with falls back to the whole text.
    """
    parts = sentences(text)
    want = _words(quote)
    if not parts or not want:
        return text.strip()
    best, best_key = text.strip(), (-1, 0)
    for i in range(len(parts)):
        for j in range(i + 1, min(len(parts), i + 3) + 1):
            covered = len(want & _words(" ".join(parts[i:j])))
            key = (covered, -(j - i))
            if key > best_key:
                best, best_key = " ".join(parts[i:j]), key
    return best if best_key[0] > 0 else text.strip()

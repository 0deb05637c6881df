"""Inter-rater agreement on one session: who tagged which segments, and how often raters agree.

Units are the session's turns (`SessionView.units`: settled turns, plus any fragment no turn
settled). For each rubric tag, each rater gives each unit a binary label: 1 when one of the
rater's tags with that tag id marks it (`marked_units`: the turn holding the fragments the tag
lists, else the turn at its moment; one unit per tag, so consecutive turns never share a tag),
0 otherwise, and "missing" (NaN) for units outside the part of the recording the rater declared
they reviewed (a tag file's `coverage`).

Raters (see docs/calibration.md for the full rules):
- `human:<name>`: the tags that person added, plus the copilot tags they confirmed or
  edited (an endorsement is a judgment too), minus any tag their own last verdict rejected.
- `copilot:rules`: every tag the rules tagger proposed, as proposed (a human rejecting it
  later does not change what the copilot said: that disagreement is what we measure).
- `copilot:llm`: tags an `llm:<model>` source proposed, plus rules tags the LLM confirmed or
  edited, minus tags the LLM disputed (an update back to `proposed`) or rejected.

Statistics come from well-kept libraries: scikit-learn's `cohen_kappa_score` per pair and the
`krippendorff` package's nominal alpha across all raters (it handles missing entries). An
undefined statistic (no variation, no shared units) is reported as `None` with a reason.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Iterable, Sequence

import numpy as np

from copilot import actors
from copilot.events import Event
from copilot.session.fold import SessionView, TagState, Unit, fold

COVERAGE_COMPONENT = "calibration"  # status events that record a tag-file import and its coverage


# --- raters and their claims ------------------------------------------------------------------------


def normalize_rater(name: str) -> str:
    """What a user types on the command line (`alice`, `rules`, `llm`, `human:alice`) -> rater id."""
    return actors.rater(name.strip())


@dataclass
class Claim:
    """One rater's assertion that a tag applies to a span of the transcript."""

    rater: str
    tag: str
    tag_id: str  # the event-log tag this claim comes from
    start_ms: int
    end_ms: int
    segment_ids: list[str]
    evidence: str = ""


def claims_by_rater(view: SessionView) -> dict[str, list[Claim]]:
    """Each rater's standing claims, from tags and the verdicts on them (in log order)."""
    out: dict[str, list[Claim]] = {}
    for state in view.tags:
        for rater, label in _verdicts(state).items():
            if label is None:
                continue
            t = state.tag
            out.setdefault(rater, []).append(
                Claim(rater, label, t.id, t.start_ms, t.end_ms, list(t.segment_ids), t.evidence)
            )
    return out


def raters_seen(view: SessionView) -> list[str]:
    """Every rater that made, judged or imported anything (even if nothing of theirs stands)."""
    seen: set[str] = set()
    for state in view.tags:
        seen.update(_verdicts(state))
    seen.update(coverage_by_rater(view))
    return sorted(seen)


def _verdicts(state: TagState) -> dict[str, str | None]:
    """rater -> the tag id that rater asserts for this tag (None = the rater does not assert it)."""
    label = state.original_tag
    verdicts: dict[str, str | None] = {actors.rater(state.source): label}
    human_ruled = state.kind == "tag.added"
    for upd in state.history:
        own = upd.tag if upd.tag is not None else label
        # The tag id others endorse follows the fold: a machine relabel after a person's verdict
        # is the machine's own claim only.
        if upd.tag is not None and (actors.is_human(upd.by) or not human_ruled):
            label = upd.tag
        human_ruled = human_ruled or actors.is_human(upd.by)
        # "proposed" from another rater is a demotion (the LLM disputing a rules tag): not endorsed.
        # From the tag's own source it is that tagger carrying its tag onto the settled turn.
        demoted = upd.status == "proposed" and actors.rater(upd.by) != actors.rater(state.source)
        verdicts[actors.rater(upd.by)] = None if demoted or upd.status in ("rejected", "retracted") else own
    if state.status == "retracted":
        # Withdrawn by the machine before anyone ruled on it: nobody's vote.
        return dict.fromkeys(verdicts)
    return verdicts


def coverage_by_rater(view: SessionView) -> dict[str, tuple[int | None, int | None]]:
    """The span each importing rater declared they reviewed (None bounds = open)."""
    out: dict[str, tuple[int | None, int | None]] = {}
    for st in view.statuses:
        if st.component != COVERAGE_COMPONENT:
            continue
        rater = st.details.get("rater")
        if not rater:
            continue
        cov = st.details.get("coverage") or {}
        out[rater] = (cov.get("start_ms"), cov.get("end_ms"))
    return out


# --- unit labels ------------------------------------------------------------------------------------


def marked_units(claim: Claim, units: Sequence[Unit]) -> set[int]:
    """The unit a claim marks (one at most: a tag never marks two turns).

    The unit holding the fragments (or turn) it lists; if it lists several units' fragments, the
    one it overlaps most in time. With no known ids, a point claim (start == end, a hotkey pressed
    at a moment) marks the unit containing that moment (the latest to start, when two channels
    overlap), or else the last unit that began before it (what the rater reacted to); a span claim
    marks the unit it overlaps most.
    """
    where: dict[str, int] = {}
    for i, u in enumerate(units):
        where[u.id] = i
        for sid in u.segment_ids:
            where[sid] = i
    listed = list(dict.fromkeys(where[s] for s in claim.segment_ids if s in where))
    if len(listed) == 1:
        return set(listed)
    candidates = listed or list(range(len(units)))
    if claim.end_ms > claim.start_ms:
        overlap = {i: min(claim.end_ms, units[i].end_ms) - max(claim.start_ms, units[i].start_ms) for i in candidates}
        best = max(candidates, key=lambda i: (overlap[i], -i), default=None)
        if best is not None and (overlap[best] > 0 or listed):
            return {best}
        return set()
    t = claim.start_ms
    inside = [i for i in candidates if units[i].start_ms <= t < units[i].end_ms]
    if inside:
        return {max(inside, key=lambda i: units[i].start_ms)}
    before = [i for i in candidates if units[i].start_ms <= t]
    return {before[-1]} if before else set()


def label_matrix(
    units: Sequence[Unit],
    claims: dict[str, list[Claim]],
    raters: Sequence[str],
    tags: Sequence[str],
    coverage: dict[str, tuple[int | None, int | None]] | None = None,
) -> dict[str, np.ndarray]:
    """tag -> float array [rater, unit] of 1.0 / 0.0 / NaN (not covered by that rater)."""
    coverage = coverage or {}
    out = {t: np.zeros((len(raters), len(units))) for t in tags}
    for r, rater in enumerate(raters):
        for c in claims.get(rater, []):
            if c.tag in out:
                for u in marked_units(c, units):
                    out[c.tag][r, u] = 1.0
        lo, hi = coverage.get(rater, (None, None))
        if lo is not None or hi is not None:
            for u, seg in enumerate(units):
                mid = (seg.start_ms + seg.end_ms) / 2
                if (lo is not None and mid < lo) or (hi is not None and mid > hi):
                    for t in tags:
                        out[t][r, u] = np.nan
    return out


# --- statistics -------------------------------------------------------------------------------------


@dataclass
class Stat:
    value: float | None
    reason: str | None = None  # why value is None
    n: int = 0  # units (or items) it was computed on

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "reason": self.reason, "n": self.n}


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> Stat:
    """Cohen's kappa on the units both raters labelled (scikit-learn)."""
    from sklearn.metrics import cohen_kappa_score

    both = ~(np.isnan(a) | np.isnan(b))
    n = int(both.sum())
    if n == 0:
        return Stat(None, "no units rated by both", 0)
    x, y = a[both].astype(int), b[both].astype(int)
    if len(set(x.tolist()) | set(y.tolist())) == 1:
        # Expected agreement is 1, so kappa is 0/0: both gave every unit the same label.
        word = "present" if x[0] else "absent"
        return Stat(None, f"undefined: both raters marked every unit {word} (no variation)", n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = float(cohen_kappa_score(x, y, labels=[0, 1]))
    if math.isnan(k):
        return Stat(None, "undefined: expected agreement is 1", n)
    return Stat(k, None, n)


def krippendorff_alpha(data: np.ndarray) -> Stat:
    """Krippendorff's alpha, nominal, over a [rater, unit] array with NaN for missing."""
    import krippendorff

    if data.shape[0] < 2:
        return Stat(None, "needs at least two raters", 0)
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    n = int(pairable.sum())
    if n == 0:
        return Stat(None, "no unit was rated by two raters", 0)
    values = set(data[:, pairable][~np.isnan(data[:, pairable])].tolist())
    if len(values) < 2:
        word = "present" if values == {1.0} else "absent"
        return Stat(None, f"undefined: every rating is '{word}' (no variation)", n)
    a = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal", value_domain=sorted(values)))
    if math.isnan(a):
        return Stat(None, "undefined", n)
    return Stat(a, None, n)


def percent_agreement(data: np.ndarray) -> Stat:
    """Share of units (rated by at least two raters) on which all their raters agree."""
    vals = []
    for u in range(data.shape[1]):
        col = data[:, u]
        col = col[~np.isnan(col)]
        if len(col) >= 2:
            vals.append(bool((col == col[0]).all()))
    if not vals:
        return Stat(None, "no unit was rated by two raters", 0)
    return Stat(sum(vals) / len(vals), None, len(vals))


def pair_agreement(a: np.ndarray, b: np.ndarray) -> Stat:
    both = ~(np.isnan(a) | np.isnan(b))
    n = int(both.sum())
    if n == 0:
        return Stat(None, "no units rated by both", 0)
    return Stat(float((a[both] == b[both]).mean()), None, n)


@dataclass
class PairStats:
    a: str
    b: str
    kappa: Stat
    agreement: Stat

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "kappa": self.kappa.to_json(), "agreement": self.agreement.to_json()}


@dataclass
class TagStats:
    tag: str
    label: str
    alpha: Stat
    agreement: Stat
    pairs: list[PairStats]
    marked: dict[str, int]  # rater -> units marked

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "label": self.label,
            "alpha": self.alpha.to_json(),
            "agreement": self.agreement.to_json(),
            "pairs": [p.to_json() for p in self.pairs],
            "marked": self.marked,
        }


def tag_stats(tag: str, label: str, data: np.ndarray, raters: Sequence[str]) -> TagStats:
    pairs = [
        PairStats(raters[i], raters[j], cohen_kappa(data[i], data[j]), pair_agreement(data[i], data[j]))
        for i, j in combinations(range(len(raters)), 2)
    ]
    marked = {r: int(np.nansum(data[i])) for i, r in enumerate(raters)}
    return TagStats(tag, label, krippendorff_alpha(data), percent_agreement(data), pairs, marked)


# --- the report -------------------------------------------------------------------------------------


@dataclass
class Disagreement:
    tag: str
    segment_id: str
    start_ms: int
    end_ms: int
    speaker: str
    text: str
    marked_by: list[str]
    not_marked_by: list[str]
    evidence: dict[str, str] = field(default_factory=dict)  # rater -> their evidence quote

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Calibration:
    session_id: str
    raters: list[str]
    units: int
    tags: list[TagStats]
    overall: TagStats
    disagreements: list[Disagreement]
    timelines: dict[str, list[dict[str, Any]]]
    coverage: dict[str, tuple[int | None, int | None]]

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "raters": self.raters,
            "units": self.units,
            "unit": "turn",
            "tags": [t.to_json() for t in self.tags],
            "overall": self.overall.to_json(),
            "disagreements": [d.to_json() for d in self.disagreements],
            "timelines": self.timelines,
            "coverage": {k: {"start_ms": v[0], "end_ms": v[1]} for k, v in self.coverage.items()},
        }


def calibrate_view(
    view: SessionView, raters: Sequence[str] | None = None, labels: dict[str, str] | None = None
) -> Calibration:
    """Agreement statistics for a folded session. `raters` None = everyone seen in the log."""
    labels = labels or {}
    units = view.units()
    claims = claims_by_rater(view)
    coverage = coverage_by_rater(view)
    rater_list = [normalize_rater(r) for r in raters] if raters else raters_seen(view)
    rater_list = list(dict.fromkeys(rater_list))
    seen_tags = {c.tag for cs in claims.values() for c in cs}
    tags = list(labels) + sorted(seen_tags - set(labels))
    matrix = label_matrix(units, claims, rater_list, tags, coverage)
    per_tag = [tag_stats(t, labels.get(t, t), matrix[t], rater_list) for t in tags]
    # Overall: every (unit, tag) pair is one binary item, so all tags pool into one table.
    stacked = np.concatenate([matrix[t] for t in tags], axis=1) if tags else np.zeros((len(rater_list), 0))
    overall = tag_stats("*", "All tags (unit x tag)", stacked, rater_list)

    disagreements = []
    for u, seg in enumerate(units):
        for t in tags:
            col = matrix[t][:, u]
            present = [rater_list[i] for i in range(len(rater_list)) if col[i] == 1.0]
            absent = [rater_list[i] for i in range(len(rater_list)) if col[i] == 0.0]
            if present and absent:
                ev = {}
                for r in present:
                    for c in claims.get(r, []):
                        if c.tag == t and u in marked_units(c, units):
                            ev[r] = c.evidence
                            break
                disagreements.append(
                    Disagreement(t, seg.id, seg.start_ms, seg.end_ms, seg.speaker, seg.text, present, absent, ev)
                )

    timelines = {}
    for r in rater_list:
        timelines[r] = [
            {
                "tag": c.tag,
                "tag_id": c.tag_id,
                "start_ms": c.start_ms,
                "end_ms": c.end_ms,
                "segment_ids": [units[i].id for i in sorted(marked_units(c, units))],
                "evidence": c.evidence,
            }
            for c in sorted(claims.get(r, []), key=lambda c: c.start_ms)
        ]
    return Calibration(
        view.session_id,
        rater_list,
        len(units),
        per_tag,
        overall,
        disagreements,
        timelines,
        {r: coverage[r] for r in rater_list if r in coverage},
    )


def calibrate(
    events: Iterable[Event], raters: Sequence[str] | None = None, labels: dict[str, str] | None = None
) -> Calibration:
    return calibrate_view(fold(events), raters, labels)


# --- text table ------------------------------------------------------------------------------------


def _fmt(stat: Stat, pct: bool = False) -> str:
    if stat.value is None:
        return "n/a"
    return f"{stat.value * 100:.0f}%" if pct else f"{stat.value:.2f}"


def format_report(cal: Calibration) -> str:
    """The readable table `copilot calibrate` prints."""
    from copilot.review.summary import fmt_ms

    lines = [f"Session {cal.session_id}: {cal.units} turns, {len(cal.raters)} raters: {', '.join(cal.raters)}"]
    if len(cal.raters) < 2:
        lines.append("Agreement needs at least two raters.")
    rows = cal.tags + [cal.overall]
    name_w = max([len(r.label) for r in rows] + [3])
    lines += ["", f"{'Tag':<{name_w}}  {'alpha':>6}  {'agree':>6}  marked per rater"]
    for r in rows:
        marked = ", ".join(f"{k}={v}" for k, v in r.marked.items())
        lines.append(f"{r.label:<{name_w}}  {_fmt(r.alpha):>6}  {_fmt(r.agreement, True):>6}  {marked}")
    pairs = [(p.a, p.b) for p in cal.overall.pairs]
    if pairs:
        lines += ["", "Cohen's kappa per pair (% agreement)"]
        pair_w = max(len(f"{a} ~ {b}") for a, b in pairs)
        header = f"{'Pair':<{pair_w}}  " + "  ".join(f"{r.label[:18]:>18}" for r in rows)
        lines.append(header)
        for k, (a, b) in enumerate(pairs):
            cells = []
            for r in rows:
                p = r.pairs[k]
                cells.append(f"{_fmt(p.kappa) + ' (' + _fmt(p.agreement, True) + ')':>18}")
            lines.append(f"{a + ' ~ ' + b:<{pair_w}}  " + "  ".join(cells))
    reasons = sorted(
        {f"{r.label}: {s.reason}" for r in rows for s in [r.alpha] + [p.kappa for p in r.pairs] if s.reason}
    )
    if reasons:
        lines += ["", "n/a means undefined:"] + [f"  {x}" for x in reasons]
    lines += ["", f"Disagreements ({len(cal.disagreements)})"]
    labels = {t.tag: t.label for t in cal.tags}
    for d in cal.disagreements:
        lines.append(
            f"  [{fmt_ms(d.start_ms)}-{fmt_ms(d.end_ms)}] {labels.get(d.tag, d.tag)}: "
            f"yes={','.join(d.marked_by)} no={','.join(d.not_marked_by)}"
        )
        lines.append(f'      {d.speaker}: "{d.text}"')
    return "\n".join(lines)

"""Rules first, the LLM second: live refinement and its batch equivalent.

Rules tags are shown at once. The LLM then reads the same segments with more context and,
for every target segment, its answer is merged into the rules tags (`merge`):

- same tag on the segment        -> `TagUpdate(status="confirmed", by="llm:<model>", confidence)`
- a different tag on the segment -> `TagUpdate(status="edited", tag=<new id>, evidence, rationale)`
  (a rules tag the LLM reads differently is corrected in place: same tag id, no duplicate)
- no tag at all on the segment   -> `TagUpdate(status="proposed", confidence <= 0.3, rationale)`:
  the LLM disputes it. It is NOT deleted: the interviewer still sees it, faded; rejecting
  stays a human act (a provider hiccup must not silently remove evidence).
- a tag the rules missed         -> a new `Tag` with `source="llm:<model>"`.

Live (`LLMRefiner`), segments that arrive while a call is in flight are coalesced into the
next call; `submit` never waits. Batch (`HybridTagger`) applies the same merge per segment
and returns the resulting tags, leaving out disputed ones (the batch output is a verdict).
On any LLM failure the rules tags stand. See docs/llm.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Collection, Sequence, Union

from copilot.events import Segment, Status, Tag, TagUpdate
from copilot.tagging.base import Tagger
from copilot.tagging.llm import LLMResult, LLMTagger
from copilot.tagging.llm_client import LLMError, LLMUsage, warm_litellm

log = logging.getLogger(__name__)

DISPUTED_CONFIDENCE = 0.3

Payload = Union[Tag, TagUpdate, Status]
Emit = Callable[[Payload], Awaitable[None]]


# --------------------------------------------------------------------------- the merge


def merge(
    rules_tags: Sequence[Tag],
    llm_tags: Sequence[Tag],
    judged: Sequence[str],
    by: str,
    unverified: Collection[tuple[str, str]] = (),
) -> list[Tag | TagUpdate]:
    """The LLM's verdict on the `judged` segment ids, as updates of the rules tags plus new tags.

    Rules tags on segments the LLM did not judge are left alone, and so is a rules tag the
    LLM claimed too but with a quote that is not in the transcript (`unverified`): an answer
    without evidence neither confirms nor disputes.
    """
    unverified = set(unverified)
    judged_set = set(judged)
    out: list[Tag | TagUpdate] = []
    for seg_id in judged:
        rules_here = [t for t in rules_tags if _home(t, judged_set) == seg_id]
        llm_here = [t for t in llm_tags if t.segment_ids and t.segment_ids[0] == seg_id]
        used: set[int] = set()
        unmatched: list[Tag] = []
        for r in rules_here:
            i = next((i for i, l in enumerate(llm_here) if i not in used and l.tag == r.tag), None)
            if i is None:
                unmatched.append(r)
                continue
            used.add(i)
            out.append(
                TagUpdate(
                    tag_id=r.id,
                    status="confirmed",
                    by=by,
                    confidence=llm_here[i].confidence,
                    rationale=llm_here[i].rationale or None,
                )
            )
        for r in unmatched:
            if (seg_id, r.tag) in unverified:
                continue
            i = next((i for i in range(len(llm_here)) if i not in used), None)
            if i is None:
                reason = f"{by} found no {r.tag} here"
                out.append(
                    TagUpdate(
                        tag_id=r.id,
                        status="proposed",
                        by=by,
                        confidence=min(r.confidence, DISPUTED_CONFIDENCE),
                        rationale=reason,
                    )
                )
                continue
            used.add(i)
            l = llm_here[i]
            out.append(
                TagUpdate(
                    tag_id=r.id,
                    status="edited",
                    by=by,
                    tag=l.tag,
                    evidence=l.evidence,
                    rationale=l.rationale or None,
                    confidence=l.confidence,
                )
            )
        out += [l for i, l in enumerate(llm_here) if i not in used]
    return out


def _home(tag: Tag, judged: set[str]) -> str | None:
    """The judged segment a rules tag belongs to (its first segment id that was judged).

    A tag carried to a settled turn keeps its fragments' ids in `segment_ids` and names the turn
    in `turn_id`; the LLM judges the turn, so that is its home (else the LLM's verdict on the turn
    would be a second chip beside the rules' one instead of an update of it).
    """
    if tag.turn_id is not None and tag.turn_id in judged:
        return tag.turn_id
    return next((s for s in tag.segment_ids if s in judged), None)


def apply(rules_tags: Sequence[Tag], changes: Sequence[Tag | TagUpdate], *, keep_disputed: bool) -> list[Tag]:
    """The tags that result from applying `merge`'s output (batch use)."""
    by_id = {t.id: t for t in rules_tags}
    dropped: set[str] = set()
    added: list[Tag] = []
    for change in changes:
        if isinstance(change, Tag):
            added.append(change)
            continue
        tag = by_id.get(change.tag_id)
        if tag is None:
            continue
        if change.status == "proposed" and not keep_disputed:
            dropped.add(tag.id)
        update: dict[str, Any] = {
            k: v
            for k, v in (
                ("tag", change.tag),
                ("evidence", change.evidence),
                ("rationale", change.rationale),
                ("confidence", change.confidence),
            )
            if v is not None
        }
        if change.status == "edited":
            update["source"] = change.by  # the label is now the LLM's call
        by_id[tag.id] = tag.model_copy(update=update)
    return [t for t in by_id.values() if t.id not in dropped] + added


# --------------------------------------------------------------------------- batch


class HybridTagger:
    """Rules then LLM for one segment at a time (`copilot tag|eval --tagger hybrid`)."""

    def __init__(self, rules: Tagger, llm: LLMTagger, *, keep_disputed: bool = False) -> None:
        self.rules = rules
        self.llm = llm
        self.keep_disputed = keep_disputed
        self.name = f"rules+{llm.name}"

    @property
    def usage(self) -> LLMUsage:
        return self.llm.usage

    def tag(self, segment: Segment, context: Sequence[Segment] = ()) -> list[Tag]:
        rules_tags = self.rules.tag(segment, context)
        if not self.llm.taggable(segment):
            return rules_tags
        result = self.llm.tag_window([segment], context)
        if result.error_kind in ("config", "unreachable"):
            raise LLMError(result.error or "LLM call failed")
        if not result.ok:
            log.warning("%s: %s; rules tags stand", self.llm.name, result.error)
            return rules_tags
        changes = merge(rules_tags, result.tags, [segment.id], self.llm.name, result.unverified)
        return apply(rules_tags, changes, keep_disputed=self.keep_disputed)


# --------------------------------------------------------------------------- live


@dataclass
class RefinerStats:
    calls: int = 0  # windows sent (one per LLM call, retries not counted)
    segments: int = 0  # target segments submitted
    coalesced: int = 0  # segments that rode along in a call with others (calls saved)
    skipped: int = 0  # segments never sent: backlog overflow or shutdown deadline
    failures: int = 0
    timeouts: int = 0
    confirmed: int = 0
    edited: int = 0
    disputed: int = 0
    added: int = 0
    last_error: str | None = None
    usage: LLMUsage = field(default_factory=LLMUsage)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "usage"}
        out.update(self.usage.to_json())
        out["calls"] = self.calls  # windows, not HTTP requests (usage.calls)
        out["http_requests"] = self.usage.calls
        return out


@dataclass
class _Pending:
    segment: Segment
    context: tuple[Segment, ...]
    rules_tags: tuple[Tag, ...]


class LLMRefiner:
    """Live LLM refinement of rules tags: `submit` returns at once, results arrive via `emit`.

    `emit(payload)` is awaited with a `Tag` (a tag the rules missed), a `TagUpdate`
    (confirming, correcting or disputing a rules tag, same tag id) or a `Status` (warning,
    component "llm", when a call fails or times out: the rules tags stand).

    Call `submit` from the event loop's thread (it is safe from another thread too: it hops
    onto the loop). At most `max_in_flight` calls run at once; everything submitted while
    they run goes into the next call, oldest first, at most `max_batch` segments per call.
    """

    def __init__(
        self,
        tagger: LLMTagger,
        emit: Emit,
        *,
        max_in_flight: int = 1,
        timeout_s: float | None = None,
        max_batch: int = 8,
        max_backlog: int = 32,
    ) -> None:
        self.tagger = tagger
        self.emit = emit
        self.max_in_flight = max(1, max_in_flight)
        self.timeout_s = float(timeout_s if timeout_s is not None else tagger.timeout_s)
        self.max_batch = max(1, max_batch)
        self.max_backlog = max(self.max_batch, max_backlog)
        self.stats = RefinerStats()
        self._pending: list[_Pending] = []
        self._recent: deque[Segment] = deque(maxlen=64)  # context when the caller gives none
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        warm_litellm(tagger.model, background=True)  # no-op when build_llm already warmed it

    # -- the live API ----------------------------------------------------------------------
    def submit(self, segment: Segment, context: Sequence[Segment] = (), rules_tags: Sequence[Tag] = ()) -> None:
        """Queue a final segment (and the rules tags already emitted for it). Never waits.

        Submit every final segment, interviewer turns included: those are not sent as
        targets, but they become the context the next call reads.
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None:
            if running is None:
                raise RuntimeError("LLMRefiner.submit: first call must come from the event loop")
            self._loop = running
        if running is not self._loop:
            self._loop.call_soon_threadsafe(self._submit, segment, tuple(context), tuple(rules_tags))
            return
        self._submit(segment, tuple(context), tuple(rules_tags))

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Stop taking segments; let queued and in-flight calls finish until the deadline, then cancel."""
        self._closed = True
        deadline = time.monotonic() + timeout_s
        while self._tasks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=remaining)
        if self._tasks or self._pending:
            self.stats.skipped += len(self._pending)
            self._pending.clear()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def status(self) -> Status:
        """The counters as an info `Status` for the session log (calls, tokens, cost...)."""
        s = self.stats
        cost = f", ${s.usage.cost_usd:.4f}" if s.usage.cost_known else ""
        return Status(
            level="info",
            component="llm",
            tagger=self.tagger.name,
            message=(
                f"{self.tagger.model}: {s.calls} calls, {s.segments} segments "
                f"({s.coalesced} coalesced), {s.failures} failed, {s.usage.total_tokens} tokens{cost}"
            ),
            details=s.to_json(),
        )

    # -- internals -------------------------------------------------------------------------
    def _submit(self, segment: Segment, context: tuple[Segment, ...], rules_tags: tuple[Tag, ...]) -> None:
        if self._closed:
            return
        before = tuple(self._recent)
        self._recent.append(segment)
        if not self.tagger.taggable(segment):
            return
        self.stats.segments += 1
        self._pending.append(_Pending(segment, context or before, rules_tags))
        if len(self._pending) > self.max_backlog:
            # The LLM is slower than the conversation: the oldest keep their rules tags only.
            overflow = len(self._pending) - self.max_backlog
            del self._pending[:overflow]
            self.stats.skipped += overflow
        self._start_calls()

    def _start_calls(self) -> None:
        while self._pending and len(self._tasks) < self.max_in_flight:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)

    async def _run(self, batch: list[_Pending]) -> None:
        try:
            await self._call(batch)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 (a bug here must not kill the session)
            log.exception("LLM refinement failed")
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._start_calls()  # whatever arrived meanwhile: one call for all of it

    async def _call(self, batch: list[_Pending]) -> None:
        segments = [p.segment for p in batch]
        context: list[Segment] = []
        for p in batch:
            context += p.context
        self.stats.calls += 1
        self.stats.coalesced += len(batch) - 1
        try:
            # The tagger keeps its own deadline; this is the backstop that makes it a promise.
            result = await asyncio.wait_for(self.tagger.atag_window(segments, context), self.timeout_s + 0.25)
        except asyncio.TimeoutError:
            result = LLMResult(error=f"LLM timeout after {self.timeout_s:g} s", error_kind="timeout")
            result.usage.failures = 1
        self.stats.usage += result.usage
        if not result.ok:
            await self._failed(result, segments)
            return
        rules_tags = [t for p in batch for t in p.rules_tags]
        judged = [s.id for s in segments if self.tagger.taggable(s)]
        for change in merge(rules_tags, result.tags, judged, self.tagger.name, result.unverified):
            if isinstance(change, Tag):
                self.stats.added += 1
            elif change.status == "confirmed":
                self.stats.confirmed += 1
            elif change.status == "edited":
                self.stats.edited += 1
            else:
                self.stats.disputed += 1
            await self._emit(change)

    async def _failed(self, result: LLMResult, segments: Sequence[Segment]) -> None:
        self.stats.failures += 1
        if result.error_kind == "timeout":
            self.stats.timeouts += 1
        self.stats.last_error = result.error
        await self._emit(
            Status(
                level="warning",
                component="llm",
                tagger=self.tagger.name,
                message=f"{result.error}; rules tags stand",
                details={"kind": result.error_kind, "segment_ids": [s.id for s in segments]},
            )
        )

    async def _emit(self, payload: Payload) -> None:
        try:
            await self.emit(payload)
        except Exception:  # noqa: BLE001 (a failing consumer must not stop refinement)
            log.exception("LLMRefiner: emit failed for %s", type(payload).__name__)

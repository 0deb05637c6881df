"""The LLM tagger: any litellm model tags a window of transcript against the rubric.

One call covers one or more *target* segments shown inside a rolling window of the turns
before them. The model answers JSON (`{"tags": [{segment_id, tag, quote, rationale,
confidence}]}`); every tag must cite a target segment and a quote that is a verbatim span
of that segment's text. Anything else is dropped, never shown: an invented quote, an
unknown tag id, a tag on speech the rubric does not tag (interviewer turns).

litellm is imported lazily (it takes seconds) with `LITELLM_LOCAL_MODEL_COST_MAP=True` so
the import never touches the network. Retries with exponential backoff on 429, 5xx,
timeouts and dropped connections happen here (litellm's and the OpenAI client's own
retries are switched off so that one deadline covers the whole attempt). See docs/llm.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Sequence

from copilot.errors import CopilotError
from copilot.events import Segment, Tag
from copilot.tagging.llm_schema import (  # issue 12: constrained output, sized answers, prompt budget
    DEFAULT_CONTEXT_TOKENS, PromptBudget, TokenCounter, answer_token_limit, prime_prefix_cache, response_format,
    response_schema)

if TYPE_CHECKING:
    from copilot.tagging.rubric import Rubric, RubricTag

log = logging.getLogger(__name__)

ErrorKind = Literal["config", "unreachable", "transient", "timeout", "output"]

DEFAULT_CONFIDENCE = 0.7
MAX_EXAMPLES = 6  # per tag and list: bounds the prompt, and examples beyond this add little
# issue 12: providers whose server is the user's own and compiles json_schema into a grammar
SELF_HOSTED_PREFIXES = ("ollama/", "ollama_chat/", "hosted_vllm/", "lm_studio/", "llamafile/")


class LLMError(CopilotError):
    """The LLM cannot be used as configured (unknown model, bad key, unreachable api_base)."""


# --------------------------------------------------------------------------- litellm, lazily

_litellm: Any = None
_import_lock = threading.Lock()


def import_litellm() -> Any:
    """Import litellm once, offline: the bundled cost map, no debug banners."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                os.environ.setdefault("LITELLM_LOG", "ERROR")
                import litellm

                litellm.suppress_debug_info = True
                litellm.telemetry = False
                _litellm = litellm
    return _litellm


_warmed = False


def warm_litellm(model: str = "openai/gpt-4o-mini", *, background: bool = False) -> None:
    """Import litellm and make one offline `mock_response` call (seconds, once per process).

    Without it the first real call stalls its event loop for ~0.5 s while litellm builds
    its pydantic models; call this before the live session starts (`build_tagger` does).
    `background=True` does it in a thread (still contends for the GIL: prefer before).
    """
    global _warmed
    if background:
        if not _warmed:
            threading.Thread(target=warm_litellm, args=(model,), name="warm-litellm", daemon=True).start()
        return
    litellm = import_litellm()
    with _import_lock:
        if _warmed:
            return
        try:
            litellm.completion(model=model, messages=[{"role": "user", "content": "ping"}],
                               mock_response='{"tags": []}', response_format={"type": "json_object"},
                               drop_params=True)
        except Exception as exc:  # noqa: BLE001 (warming is best effort)
            log.debug("litellm warm-up failed: %s", exc)
        _warmed = True


# --------------------------------------------------------------------------- accounting


@dataclass
class LLMUsage:
    """Counters for one call or accumulated over many (`+=`)."""

    calls: int = 0  # HTTP requests made, retries included
    failures: int = 0  # windows that produced no usable answer
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0  # only calls litellm could price (local models: 0)
    priced_calls: int = 0
    dropped_tags: int = 0  # invented quotes, unknown ids, interviewer speech, wrong segment
    latency_s: float = 0.0  # total wall time spent in calls

    def __iadd__(self, other: "LLMUsage") -> "LLMUsage":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_known(self) -> bool:
        return self.priced_calls > 0

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["total_tokens"] = self.total_tokens
        out["cost_usd"] = round(self.cost_usd, 6)
        out["latency_s"] = round(self.latency_s, 3)
        return out


@dataclass
class LLMResult:
    """What one window's call produced. `error` set means: no usable answer (rules tags stand)."""

    tags: list[Tag] = field(default_factory=list)
    error: str | None = None
    error_kind: ErrorKind | None = None
    usage: LLMUsage = field(default_factory=LLMUsage)
    raw: str = ""  # the model's text, for debugging
    unverified: set[tuple[str, str]] = field(default_factory=set)  # (segment, tag) claimed without evidence

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------- prompt

SYSTEM_PROMPT = """\
You tag the transcript of a live senior engineering interview against a rubric.
The interviewer watches for the moments the rubric defines in the CANDIDATE's speech.

Rules:
- Tag only the segments marked ">>" in the transcript. Earlier turns are context.
- A segment may have no tag (most do not), one tag, or occasionally two.
- Use only the tag ids listed below. Respect "applies to": never tag a speaker the tag does not apply to.
- Near misses look similar but are NOT the tag: do not tag them.
- Speech-recognizer text: lowercase, missing punctuation and disfluencies are normal; judge the meaning.
- "quote" must be copied word for word from the cited segment: the shortest span that shows the behaviour.
  Never paraphrase, never join words from different segments.
- "confidence" is your probability (0 to 1) that the tag is right.

Answer with one JSON object and nothing else:
{"tags": [{"segment_id": "<id from the transcript>", "tag": "<tag id>", "quote": "<verbatim words>",
           "rationale": "<one short sentence>", "confidence": 0.0}]}
If nothing applies, answer {"tags": []}.
"""

RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "segment_id": {"type": "string"},
                    "tag": {"type": "string"},
                    "quote": {"type": "string"},
                    "rationale": {"type": "string"},
                    "confidence": {"type": "number"},
                },
                "required": ["segment_id", "tag", "quote", "rationale", "confidence"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["tags"],
    "additionalProperties": False,
}


def rubric_prompt(rubric: "Rubric") -> str:
    """The rubric as the model reads it: definition, examples and near misses per tag."""
    lines = [f"Rubric: {rubric.title}", ""]
    for tag in rubric.tags:
        lines.append(f"### {tag.id} ({tag.label})")
        lines.append(f"Applies to: {tag.applies_to} speech")
        lines.append(f"Definition: {' '.join(tag.definition.split())}")
        if tag.examples:
            lines.append("Examples (this tag):")
            lines += [f"- {ex}" for ex in tag.examples[:MAX_EXAMPLES]]
        if tag.near_misses:
            lines.append("Near misses (NOT this tag):")
            lines += [f"- {ex}" for ex in tag.near_misses[:MAX_EXAMPLES]]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def transcript_prompt(window: Sequence[Segment], targets: set[str]) -> str:
    lines = ["Transcript (oldest first; [segment id] SPEAKER: text; >> marks the segments to tag):"]
    for seg in window:
        mark = ">>" if seg.id in targets else "  "
        speaker = (seg.speaker or "unknown").upper()
        lines.append(f"{mark} [{seg.id}] {speaker}: {' '.join(seg.text.split())}")
    return "\n".join(lines) + "\n"


def build_window(segments: Sequence[Segment], context: Sequence[Segment], window_turns: int) -> list[Segment]:
    """Targets plus up to `window_turns` context turns before the first of them, in time order.

    Context turns that fall between targets (an interviewer's reply between two candidate
    turns) stay in, so the model reads the conversation as it happened. Equal start times
    (batch items without timing) keep the given order: context first, then targets.
    """
    if not segments:
        return []
    target_ids = {s.id for s in segments}
    by_id: dict[str, Segment] = {}
    for seg in list(context) + list(segments):
        by_id.setdefault(seg.id, seg)
    ordered = sorted(by_id.values(), key=lambda s: s.start_ms)  # stable: ties keep their order
    first = next(i for i, s in enumerate(ordered) if s.id in target_ids)
    before = ordered[:first][-window_turns:] if window_turns > 0 else []
    return before + ordered[first:]


# --------------------------------------------------------------------------- parsing

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)


class OutputError(ValueError):
    """The model's text is not the JSON asked for."""


def parse_output(text: str) -> list[dict[str, Any]]:
    """The list of raw tag objects in the model's answer; OutputError if there is none.

    Tolerates code fences and prose around one JSON object, and a bare list of tags.
    """
    body = (text or "").strip()
    if not body:
        raise OutputError("empty answer")
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        data = _first_json(body)
    if isinstance(data, dict):
        items = data.get("tags")
        if items is None and {"segment_id", "tag"} <= data.keys():
            items = [data]  # a lone tag object
    elif isinstance(data, list):
        items = data
    else:
        items = None
    if not isinstance(items, list):
        raise OutputError('JSON has no "tags" list')
    return [item for item in items if isinstance(item, dict)]


def _first_json(body: str) -> Any:
    start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise OutputError("answer is not JSON")
    try:
        data, _ = json.JSONDecoder().raw_decode(body[start:])
    except json.JSONDecodeError as exc:
        raise OutputError(f"answer is not valid JSON ({exc.msg} at char {exc.pos})") from None
    return data


_WORD = re.compile(r"[\w']+")


def _norm(word: str) -> str:
    return word.lower().replace("\u2019", "'").strip("'")


def find_verbatim(quote: str, text: str) -> str | None:
    """The exact span of `text` that `quote` reproduces, or None.

    Matching ignores case, whitespace and punctuation between words (ASR text and a model's
    copy differ there), but every word must appear, in order, contiguously. The returned
    span is the transcript's own characters, not the model's.
    """
    q_words = [_norm(m.group()) for m in _WORD.finditer(quote.replace("\u2019", "'"))]
    q_words = [w for w in q_words if w]
    if not q_words:
        return None
    matches = [m for m in _WORD.finditer(text.replace("\u2019", "'")) if _norm(m.group())]
    t_words = [_norm(m.group()) for m in matches]
    n = len(q_words)
    for i in range(len(t_words) - n + 1):
        if t_words[i : i + n] == q_words:
            return text[matches[i].start() : matches[i + n - 1].end()]
    return None


def _confidence(value: Any) -> float:
    try:
        c = float(value)
    except (TypeError, ValueError):
        return DEFAULT_CONFIDENCE
    if c != c:  # NaN
        return DEFAULT_CONFIDENCE
    if c > 1.0 and c <= 100.0:  # a percentage
        c /= 100.0
    return min(1.0, max(0.0, c))


def validate_tags(
    items: Sequence[dict[str, Any]], rubric: "Rubric", targets: Sequence[Segment], source: str
) -> tuple[list[Tag], int, set[tuple[str, str]]]:
    """Turn the model's tag objects into `Tag`s, dropping any that cannot be shown as evidence.

    Returns the tags, how many were dropped, and the (segment id, tag id) pairs the model
    claimed with a quote that is not in the segment: not shown, but not "nothing here" either.
    """
    by_id = {s.id: s for s in targets}
    tags: list[Tag] = []
    seen: set[tuple[str, str]] = set()
    unverified: set[tuple[str, str]] = set()
    dropped = 0
    for item in items:
        seg = by_id.get(str(item.get("segment_id") or item.get("segment") or ""))
        rtag: RubricTag | None = rubric.get(str(item.get("tag") or item.get("tag_id") or ""))
        quote = item.get("quote") or item.get("evidence") or ""
        span = find_verbatim(str(quote), seg.text) if seg is not None and isinstance(quote, str) else None
        if seg is None or rtag is None or span is None or not rtag.applies(seg.speaker):
            dropped += 1
            if seg is not None and rtag is not None and rtag.applies(seg.speaker):
                unverified.add((seg.id, rtag.id))
            continue
        if (seg.id, rtag.id) in seen:  # the same tag twice on one segment: keep the first
            dropped += 1
            continue
        seen.add((seg.id, rtag.id))
        rationale = item.get("rationale")
        tags.append(
            Tag(
                tag=rtag.id,
                segment_ids=[seg.id],
                start_ms=seg.start_ms,
                end_ms=seg.end_ms,
                speaker=seg.speaker,
                evidence=span,
                rationale=" ".join(str(rationale).split())[:300] if rationale else "",
                confidence=_confidence(item.get("confidence")),
                source=source,
            )
        )
    return tags, dropped, unverified - seen


# --------------------------------------------------------------------------- the tagger


class _CallFailed(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class LLMTagger:
    """Tags transcript windows with any litellm model.

    `model` is a litellm model string (`openai/gpt-4o-mini`, `anthropic/claude-...`,
    `ollama/llama3.1`, or `openai/<name>` with `api_base` pointing at an OpenAI-compatible
    server such as llama.cpp or vLLM). `timeout_s` bounds one window's whole attempt,
    retries included. Thread-safe for the sync path; the async path is for one event loop.
    """

    def __init__(
        self,
        rubric: "Rubric",
        model: str,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 8.0,
        max_retries: int = 2,
        window_turns: int = 6,
        *,
        backoff_s: float = 0.5,
        stream: bool = False,
        json_mode: Literal["auto", "schema", "object", "none"] = "auto",
        temperature: float | None = 0.0,
        max_tokens: int | None = None,  # issue 12: None = sized to the answer's schema (llm_schema)
        extra_params: dict[str, Any] | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,  # issue 12: previous turns per call, in tokens
    ) -> None:
        if not model or not model.strip():
            raise LLMError("an LLM model name is needed (e.g. --llm openai/gpt-4o-mini)")
        self.rubric = rubric
        self.model = model.strip()
        self.name = f"llm:{self.model}"
        self.api_base = api_base
        self.api_key = api_key
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.window_turns = max(0, int(window_turns))
        self.backoff_s = backoff_s
        self.stream = stream
        self.json_mode = json_mode
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_params = dict(extra_params or {})
        self.usage = LLMUsage()
        self._usage_lock = threading.Lock()
        self._system = SYSTEM_PROMPT + "\n" + rubric_prompt(rubric)
        self._format_mode: str | None = None
        # issue 12: a bounded window of previous turns after the fixed rubric prefix (llm_schema.py)
        self.budget = PromptBudget(context_tokens=max(0, int(context_tokens)), max_turns=self.window_turns)
        self.tokens = TokenCounter()
        self.primed_s: float | None = None  # seconds the server took to cache the rubric prefix (prepare)
        self.on_result: Any = None  # issue 12: called with every LLMResult (per-call figures: llm_bench.py)

    def prepare(self) -> "LLMTagger":
        """Import and warm litellm now (seconds, once), not on the first call.

        Issue 12: also measure the rubric prefix with the server's tokenizer where it has one
        (llama.cpp `/tokenize`), so the prompt budget counts tokens as the server does.
        """
        warm_litellm(self.model)
        if self.api_base and self.tokens.calibrate(self.api_base, self._system):
            # a llama.cpp server: read the rubric prefix into its KV cache now, not in the first call
            self.primed_s = prime_prefix_cache(self.api_base, self._system)
        return self

    # -- what can be tagged ------------------------------------------------------------------
    def taggable(self, segment: Segment) -> bool:
        """Whether any rubric tag applies to this segment's speaker (interviewer turns: no)."""
        return any(t.applies(segment.speaker) for t in self.rubric.tags)

    def messages(self, segments: Sequence[Segment], context: Sequence[Segment] = ()) -> list[dict[str, str]]:
        window = build_window(segments, context, self.window_turns)
        targets = {s.id for s in segments}
        window = self.budget.fit(window, targets, self.tokens)  # issue 12: previous turns within the token budget
        # The rubric is the system message: a fixed prefix that providers can cache.
        return [
            {"role": "system", "content": self._system},
            {"role": "user", "content": transcript_prompt(window, targets)},
        ]

    # -- sync (CLI, eval): the Tagger protocol -------------------------------------------------
    def tag(self, segment: Segment, context: Sequence[Segment] = ()) -> list[Tag]:
        """Tag one segment. An unusable configuration raises LLMError; a bad or late answer gives [].

        (The CLI should stop at once when the model does not exist or the server is not there,
        but one malformed answer in a 200-item eval is a data point, not a reason to stop.)
        """
        result = self.tag_window([segment], context)
        if result.error_kind in ("config", "unreachable"):
            raise LLMError(result.error or "LLM call failed")
        if not result.ok:
            log.warning("%s: %s", self.name, result.error)
        return result.tags

    def tag_window(self, segments: Sequence[Segment], context: Sequence[Segment] = ()) -> LLMResult:
        targets, messages = self._request(segments, context)
        if not targets:
            return LLMResult()
        usage = LLMUsage()
        import_litellm()  # seconds, once: not part of the call's deadline
        started = time.monotonic()
        deadline = started + self.timeout_s
        try:
            text = self._with_retries_sync(messages, usage, deadline, targets)
        except _CallFailed as exc:
            return self._finish(LLMResult(error=exc.message, error_kind=exc.kind, usage=usage), started)
        return self._finish(self._interpret(text, targets, usage), started)

    # -- async (live path) -------------------------------------------------------------------
    async def atag_window(self, segments: Sequence[Segment], context: Sequence[Segment] = ()) -> LLMResult:
        """Tag the target `segments` (read with `context` before them). Never raises for LLM trouble."""
        targets, messages = self._request(segments, context)
        if not targets:
            return LLMResult()
        usage = LLMUsage()
        if _litellm is None:  # seconds, once, off the event loop: not part of the call's deadline
            await asyncio.to_thread(import_litellm)
        started = time.monotonic()
        deadline = started + self.timeout_s
        try:
            text = await self._with_retries_async(messages, usage, deadline, targets)
        except _CallFailed as exc:
            return self._finish(LLMResult(error=exc.message, error_kind=exc.kind, usage=usage), started)
        return self._finish(self._interpret(text, targets, usage), started)

    # -- internals -----------------------------------------------------------------------------
    def _request(self, segments: Sequence[Segment], context: Sequence[Segment]
                 ) -> tuple[list[Segment], list[dict[str, str]]]:
        """The target segments (those a rubric tag applies to) and the messages asking about them."""
        targets = [s for s in segments if self.taggable(s)]
        if not targets:
            return [], []
        # untaggable turns (the interviewer's) are still part of the conversation
        context = [*context, *(s for s in segments if not self.taggable(s))]
        return targets, self.messages(targets, context)

    def _interpret(self, text: str, targets: Sequence[Segment], usage: LLMUsage) -> LLMResult:
        try:
            items = parse_output(text)
        except OutputError as exc:
            return LLMResult(error=f"LLM answer unusable: {exc}", error_kind="output", usage=usage, raw=text)
        tags, dropped, unverified = validate_tags(items, self.rubric, targets, self.name)
        usage.dropped_tags += dropped
        if dropped:
            log.info("%s: dropped %d tag(s) without verbatim evidence or a valid tag/segment", self.name, dropped)
        return LLMResult(tags=tags, usage=usage, raw=text, unverified=unverified)

    def _finish(self, result: LLMResult, started: float) -> LLMResult:
        result.usage.latency_s = time.monotonic() - started
        if not result.ok:
            result.usage.failures += 1
        with self._usage_lock:
            self.usage += result.usage
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _params(self, messages: list[dict[str, str]], timeout: float, targets: Sequence[Segment] = ()
                ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "timeout": timeout,
            "max_retries": 0,  # our loop retries, under one deadline
            "drop_params": True,  # providers without response_format etc. ignore them instead of failing
        }
        if self.api_base:
            params["api_base"] = self.api_base
        if self.api_key:
            params["api_key"] = self.api_key
        if self.temperature is not None:
            params["temperature"] = self.temperature
        # issue 12: a strict schema sized to the call's targets, and max_tokens sized to that schema
        schema = response_schema(self.rubric.tag_ids, targets, bounded=self._self_hosted())
        params["max_tokens"] = self.max_tokens or answer_token_limit(schema)
        fmt = self._response_format(schema)
        if fmt is not None:
            params["response_format"] = fmt
        if self.stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        params.update(self.extra_params)
        return params

    def _response_format(self, schema: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if self._format_mode is None:
            self._format_mode = self._pick_format_mode()
        mode = self._format_mode
        if mode == "schema":
            return response_format(schema or RESPONSE_SCHEMA)
        if mode == "object":
            return {"type": "json_object"}
        return None

    def _self_hosted(self) -> bool:
        """A server of the user's own (an OpenAI-compatible api_base, Ollama, vLLM): grammar-constrained
        decoding that honours json_schema, including string lengths (issue 12)."""
        return bool(self.api_base) or self.model.startswith(SELF_HOSTED_PREFIXES)

    def _pick_format_mode(self) -> str:
        """json_schema where the server enforces it (self-hosted, or litellm says so), else JSON mode.

        Issue 12: a self-hosted server (llama.cpp, vLLM, Ollama, LM Studio) turns json_schema into
        a grammar; json_object is not enforced by llama.cpp, and a small model then rambles. A server
        that refuses json_schema with a 400 is asked again without it (`_drop_response_format`).
        """
        mode = self.json_mode
        if mode == "auto" and self._self_hosted():
            mode = "schema"
        if mode == "auto":
            try:
                mode = "schema" if import_litellm().supports_response_schema(self.model) else "object"
            except Exception:  # unknown provider: plain JSON mode
                mode = "object"
        return mode

    def _with_retries_sync(self, messages: list[dict[str, str]], usage: LLMUsage, deadline: float,
                           targets: Sequence[Segment] = ()) -> str:
        litellm = import_litellm()
        attempt = 0
        while True:
            remaining = self._time_left(deadline)
            usage.calls += 1
            try:
                response = litellm.completion(**self._params(messages, remaining, targets))
                if self.stream:
                    response = litellm.stream_chunk_builder(list(response), messages=messages)
                return self._account(response, usage)
            except Exception as exc:  # noqa: BLE001 (classified by _retry_wait; never escapes as a crash)
                wait = self._retry_wait(exc, attempt, deadline)
            if wait is None:
                continue  # the server refused JSON mode: ask again without it, at once
            attempt += 1
            usage.retries += 1
            time.sleep(wait)

    async def _with_retries_async(self, messages: list[dict[str, str]], usage: LLMUsage, deadline: float,
                                  targets: Sequence[Segment] = ()) -> str:
        litellm = import_litellm()  # already imported by atag_window
        attempt = 0
        while True:
            remaining = self._time_left(deadline)
            usage.calls += 1
            try:
                # wait_for as well as litellm's timeout: the deadline holds even if a provider
                # adapter ignores `timeout` or a stream stalls between chunks.
                response = await asyncio.wait_for(self._acall(litellm, messages, remaining, targets), remaining)
                return self._account(response, usage)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                wait = self._retry_wait(exc, attempt, deadline)
            if wait is None:
                continue  # the server refused JSON mode: ask again without it, at once
            attempt += 1
            usage.retries += 1
            await asyncio.sleep(wait)

    def _time_left(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            raise _CallFailed("timeout", f"LLM timeout after {self.timeout_s:g} s")
        return remaining

    def _retry_wait(self, exc: BaseException, attempt: int, deadline: float) -> float | None:
        """The decision after a failed attempt, shared by the sync and async loops.

        None: ask again at once (response_format was dropped; not counted as a retry). A number: back
        off that long, then retry. Raises _CallFailed when the failure is final or the deadline is near.
        """
        if self._drop_response_format(exc):
            return None
        kind, message = self._classify(exc)
        wait = self._backoff(attempt)
        if kind in ("config", "output") or attempt >= self.max_retries or time.monotonic() + wait >= deadline:
            raise _CallFailed(kind, message) from None
        return wait

    async def _acall(self, litellm: Any, messages: list[dict[str, str]], timeout: float,
                     targets: Sequence[Segment] = ()) -> Any:
        response = await litellm.acompletion(**self._params(messages, timeout, targets))
        if self.stream:
            chunks = [chunk async for chunk in response]
            response = litellm.stream_chunk_builder(chunks, messages=messages)
        return response

    def _drop_response_format(self, exc: BaseException) -> bool:
        """Some OpenAI-compatible servers reject `response_format`: fall back to the prompt alone.

        The prompt already asks for JSON and the parser is lenient, so this costs little.
        """
        status = getattr(exc, "status_code", None)
        if status not in (400, 422) or self._format_mode in (None, "none"):
            return False
        if "response_format" not in str(exc) and "json_schema" not in str(exc):
            return False
        log.info("%s: server refused response_format; retrying without it", self.name)
        self._format_mode = "none"
        return True

    def _backoff(self, attempt: int) -> float:
        # exponential with jitter so two sessions hitting a 429 don't retry in lockstep
        return self.backoff_s * (2**attempt) * (0.8 + 0.4 * random.random())

    def _account(self, response: Any, usage: LLMUsage) -> str:
        """Tokens and cost from the response; the answer's text."""
        if response is None:
            raise _CallFailed("output", "LLM returned no response")
        u = getattr(response, "usage", None)
        if u is not None:
            usage.prompt_tokens += int(getattr(u, "prompt_tokens", 0) or 0)
            usage.completion_tokens += int(getattr(u, "completion_tokens", 0) or 0)
        cost = self._cost(response)
        if cost is not None:
            usage.cost_usd += cost
            usage.priced_calls += 1
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            text = None
        return text or ""

    def _cost(self, response: Any) -> float | None:
        """USD cost of one response, or None where litellm has no price (local models)."""
        litellm = import_litellm()
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        if cost is None:
            try:
                cost = litellm.completion_cost(completion_response=response, model=self.model)
            except Exception:  # noqa: BLE001 (unmapped model: cost unknown, not an error)
                return None
        try:
            return float(cost)
        except (TypeError, ValueError):
            return None

    def _classify(self, exc: BaseException) -> tuple[ErrorKind, str]:
        """Which failures are worth a retry, and a one-line reason for the status event."""
        if isinstance(exc, _CallFailed):
            return exc.kind, exc.message
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            return "timeout", f"LLM timeout after {self.timeout_s:g} s"
        litellm = import_litellm()
        status = getattr(exc, "status_code", None)
        first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        if isinstance(exc, litellm.Timeout):
            return "timeout", f"LLM timeout after {self.timeout_s:g} s"
        if isinstance(exc, litellm.RateLimitError) or status == 429:
            return "transient", "LLM rate limited (HTTP 429)"
        if isinstance(exc, litellm.APIConnectionError) or _connection_failed(exc):
            # includes refused connections: worth a retry in a live session, but say where
            where = f" at {self.api_base}" if self.api_base else ""
            return "unreachable", f"cannot reach LLM {self.model}{where}"
        if isinstance(status, int) and status >= 500:
            return "transient", f"LLM server error (HTTP {status})"
        if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError) or status in (401, 403):
            return "config", f"LLM {self.model}: authentication failed (check the API key)"
        if isinstance(exc, litellm.NotFoundError) or status == 404:
            return "config", f"LLM {self.model}: model or endpoint not found"
        if isinstance(exc, litellm.BadRequestError) or status == 400:
            return "config", f"LLM {self.model} refused the request: {first_line}"
        if isinstance(exc, json.JSONDecodeError | ValueError | KeyError | TypeError):
            return "output", f"LLM response unusable: {first_line}"
        return "transient", f"LLM call failed ({exc.__class__.__name__}): {first_line}"


def _connection_failed(exc: BaseException) -> bool:
    """A refused or dropped connection (litellm reports some as HTTP 500 "Connection error")."""
    import httpx

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, httpx.ConnectError | ConnectionError):
            return True
        if cur.__class__.__name__ == "APIConnectionError" and "Timeout" not in cur.__class__.__name__:
            return True
        cur = cur.__cause__ or cur.__context__
    return "Connection error" in str(exc)

"""The LLM tagger: any litellm model tags a window of transcript against the rubric.

It asks with the prompt of `llm_prompt.py`, through the client of `llm_client.py` (transport,
retries, cost), and keeps only the tags whose evidence `llm_prompt.validate_tags` finds verbatim
in the transcript. Issue 12: the answer's strict schema, `max_tokens` and the prompt's token budget
come from `llm_schema.py`; on a llama.cpp server `prepare` measures and caches the rubric prefix.
See docs/llm.md.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from copilot.events import Segment, Tag
from copilot.tagging.llm_client import (
    CallFailed,
    ErrorKind,
    JsonMode,
    LLMClient,
    LLMError,
    LLMUsage,
    import_litellm,
    litellm_loaded,
    warm_litellm,
)
from copilot.tagging.llm_prompt import (
    RESPONSE_SCHEMA,
    SYSTEM_PROMPT,
    OutputError,
    build_window,
    parse_output,
    rubric_prompt,
    transcript_prompt,
    validate_tags,
)
from copilot.tagging.llm_schema import (  # issue 12: constrained output, sized answers, prompt budget
    DEFAULT_CONTEXT_TOKENS,
    PromptBudget,
    TokenCounter,
    prime_prefix_cache,
    response_schema,
)
from copilot.tagging.redact import Redactor, is_local_endpoint
from copilot.tagging.rubric import Rubric

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- the tagger


class LLMTagger:
    """Tags transcript windows with any litellm model.

    `model` is a litellm model string (`openai/gpt-4o-mini`, `anthropic/claude-...`,
    `ollama/llama3.1`, or `openai/<name>` with `api_base` pointing at an OpenAI-compatible
    server such as llama.cpp or vLLM). `timeout_s` bounds one window's whole attempt,
    retries included. Thread-safe for the sync path; the async path is for one event loop.
    """

    def __init__(
        self,
        rubric: Rubric,
        model: str,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 8.0,
        max_retries: int = 2,
        window_turns: int = 6,
        *,
        backoff_s: float = 0.5,
        stream: bool = False,
        json_mode: JsonMode = "auto",
        temperature: float | None = 0.0,
        max_tokens: int | None = None,  # issue 12: None = sized to each call's answer schema (llm_schema)
        extra_params: dict[str, Any] | None = None,
        redact: bool | None = None,
        redact_names: bool | None = None,  # issue 11: names too (spaCy NER) when redacting; None: if installed
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,  # issue 12: previous turns per call, in tokens
    ) -> None:
        self.client = LLMClient(
            model,
            api_base=api_base,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            stream=stream,
            json_mode=json_mode,
            temperature=temperature,
            max_tokens=max_tokens,
            extra_params=extra_params,
            response_schema=RESPONSE_SCHEMA,
        )
        self.rubric = rubric
        self.model = self.client.model
        self.name = self.client.name
        self.api_base = api_base
        self.extra_params = self.client.extra_params
        self.timeout_s = self.client.timeout_s
        self.window_turns = max(0, int(window_turns))
        self.usage = LLMUsage()
        self._usage_lock = threading.Lock()
        self._system = SYSTEM_PROMPT + "\n" + rubric_prompt(rubric)
        # Redaction (tagging/redact.py): on by default when the endpoint is not on this machine.
        if redact is None:
            redact = not is_local_endpoint(self.model, api_base)
        self.redactor: Redactor | None = Redactor(names=redact_names) if redact else None
        self._redact_lock = threading.Lock()  # the live path redacts in worker threads
        # issue 12: a bounded window of previous turns after the fixed rubric prefix (llm_schema.py)
        self.budget = PromptBudget(context_tokens=max(0, int(context_tokens)), max_turns=self.window_turns)
        self.tokens = TokenCounter()
        self.primed_s: float | None = None  # seconds the server took to cache the rubric prefix (prepare)
        self.on_result: Callable[[LLMResult], None] | None = None  # every LLMResult (per-call figures: llm_bench.py)

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
        targets, messages, schema = self._request(segments, context)
        if not targets:
            return LLMResult()
        usage = LLMUsage()
        import_litellm()  # seconds, once: not part of the call's deadline
        started = time.monotonic()
        deadline = started + self.timeout_s
        try:
            text = self.client.complete(messages, usage, deadline, schema)
        except CallFailed as exc:
            return self._finish(LLMResult(error=exc.message, error_kind=exc.kind, usage=usage), started)
        return self._finish(self._interpret(text, targets, usage), started)

    # -- async (live path) -------------------------------------------------------------------
    async def atag_window(self, segments: Sequence[Segment], context: Sequence[Segment] = ()) -> LLMResult:
        """Tag the target `segments` (read with `context` before them). Never raises for LLM trouble."""
        if self.redactor is None:
            targets, messages, schema = self._request(segments, context)
        else:  # redaction runs spaCy NER over the window: milliseconds each, never on the event loop
            targets, messages, schema = await asyncio.to_thread(self._request, segments, context)
        if not targets:
            return LLMResult()
        usage = LLMUsage()
        if not litellm_loaded():  # seconds, once, off the event loop: not part of the call's deadline
            await asyncio.to_thread(import_litellm)
        started = time.monotonic()
        deadline = started + self.timeout_s
        try:
            text = await self.client.acomplete(messages, usage, deadline, schema)
        except CallFailed as exc:
            return self._finish(LLMResult(error=exc.message, error_kind=exc.kind, usage=usage), started)
        return self._finish(self._interpret(text, targets, usage), started)

    # -- internals -----------------------------------------------------------------------------
    def _request(
        self, segments: Sequence[Segment], context: Sequence[Segment]
    ) -> tuple[list[Segment], list[dict[str, str]], dict[str, Any]]:
        """The target segments (those a rubric tag applies to), the messages asking about them, and
        the answer's JSON schema for this call (issue 12: built from the text as sent, redacted or not)."""
        targets = [s for s in segments if self.taggable(s)]
        if not targets:
            return [], [], {}
        # untaggable turns (the interviewer's) are still part of the conversation
        context = [*context, *(s for s in segments if not self.taggable(s))]
        if self.redactor is None:
            return targets, self.messages(targets, context), self._schema(targets)
        with self._redact_lock:  # one placeholder table per session: one redaction at a time
            before = sum(self.redactor.counts.values())
            sent = [self._redacted(s) for s in targets]
            messages = self.messages(sent, [self._redacted(s) for s in context])
        # What was sent, as counts only: never the text, never the values.
        log.info(
            "%s: sent %d segment(s), %d value(s) redacted this call (%s so far)",
            self.name,
            len(targets) + len(context),
            sum(self.redactor.counts.values()) - before,
            ", ".join(f"{k} {v}" for k, v in sorted(self.redactor.counts.items())) or "none",
        )
        # the schema's quote options are the redacted clauses too: a placeholder never leaves as a value
        return targets, messages, self._schema(sent)

    def _schema(self, targets: Sequence[Segment]) -> dict[str, Any]:
        """Issue 12: the strict answer schema for these targets; bounded (enums of the targets' ids
        and clauses, short strings) on a self-hosted server, whose grammar engine enforces it."""
        return response_schema(self.rubric.tag_ids, targets, bounded=self.client.self_hosted())

    def _redacted(self, segment: Segment) -> Segment:
        assert self.redactor is not None
        return segment.model_copy(update={"text": self.redactor.redact(segment.text)})

    def _interpret(self, text: str, targets: Sequence[Segment], usage: LLMUsage) -> LLMResult:
        try:
            items = parse_output(text)
        except OutputError as exc:
            return LLMResult(error=f"LLM answer unusable: {exc}", error_kind="output", usage=usage, raw=text)
        if self.redactor is not None:  # the model quotes placeholders: check and show the real words
            for item in items:
                for key in ("quote", "evidence"):
                    if isinstance(item.get(key), str):
                        item[key] = self.redactor.restore(item[key])
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

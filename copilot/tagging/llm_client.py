"""The LLM client: one litellm chat call under one deadline, with retries, JSON mode and the bill.

What it knows: transport (litellm, any provider; streaming or not), which failures are worth a
retry (429, 5xx, timeouts, dropped connections; exponential backoff with jitter), the JSON
response format and the fallback when a server refuses it, and tokens and cost per call. What it
does not know: prompts, rubrics, tags (`llm_prompt.py`, `llm.py`).

litellm is imported lazily (it takes seconds: `import litellm` measured 22 s on this busy 2-core
machine) with `LITELLM_LOCAL_MODEL_COST_MAP=True` so the import never touches the network,
and only when an LLM is configured. litellm's and the OpenAI client's own retries are switched off
so that one deadline covers the whole attempt.

Issue 12: a self-hosted server (an OpenAI-compatible `api_base`, Ollama, vLLM, LM Studio,
llamafile) compiles json_schema into a grammar, so `json_mode="auto"` asks it for the strict
schema; each call may bring its own schema (`complete(..., schema)`), and `max_tokens`, unless
set, is sized to that schema (`llm_schema.answer_token_limit`). See docs/llm.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from copilot.errors import CopilotError
from copilot.tagging.llm_schema import answer_grammar, answer_token_limit, response_format

log = logging.getLogger("copilot.tagging.llm")

ErrorKind = Literal["config", "unreachable", "transient", "timeout", "output"]
# "grammar": llama.cpp's own GBNF for the schema, compact (llm_schema.answer_grammar; `local:` uses it)
JsonMode = Literal["auto", "schema", "grammar", "object", "none"]
# issue 12: providers whose server is the user's own and compiles json_schema into a grammar
SELF_HOSTED_PREFIXES = ("ollama/", "ollama_chat/", "hosted_vllm/", "lm_studio/", "llamafile/")


class LLMError(CopilotError):
    """The LLM cannot be used as configured (unknown model, bad key, unreachable api_base)."""


class CallFailed(Exception):
    """A call that produced no answer, final (retries spent, deadline near, or not worth a retry)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


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


def litellm_loaded() -> bool:
    return _litellm is not None


_warmed = False


def warm_litellm(model: str = "openai/gpt-4o-mini", *, background: bool = False) -> None:
    """Import litellm and make one offline `mock_response` call (seconds, once per process).

    Without it the first real call stalls its event loop for ~0.5 s while litellm builds
    its pydantic models; call this before the live session starts (`select.build_llm` does).
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
            litellm.completion(
                model=model,
                messages=[{"role": "user", "content": "ping"}],
                mock_response='{"tags": []}',
                response_format={"type": "json_object"},
                drop_params=True,
            )
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
    # Where the server says (llama.cpp's `timings`; OpenAI's cached_tokens): prompt tokens read from its cache,
    # and its own milliseconds reading the rest of the prompt and generating (issue 12: where the time goes).
    cached_tokens: int = 0
    server_prompt_ms: float = 0.0
    server_gen_ms: float = 0.0

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
        out["server_prompt_ms"] = round(self.server_prompt_ms, 1)
        out["server_gen_ms"] = round(self.server_gen_ms, 1)
        return out


# --------------------------------------------------------------------------- the client


class LLMClient:
    """Chat completions from one litellm model. `complete` / `acomplete` return the answer's text,
    adding requests, retries, tokens and cost to the `LLMUsage` given, or raise `CallFailed`.

    `response_schema`: the JSON schema asked for where the model supports it (`json_mode="auto"`
    picks json_schema on a self-hosted server or where litellm knows it is supported, else JSON
    mode); a call may pass its own. `max_tokens=None`: sized to the call's schema (issue 12).
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 8.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        stream: bool = False,
        json_mode: JsonMode = "auto",
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        extra_params: dict[str, Any] | None = None,
        response_schema: dict[str, Any] | None = None,
    ) -> None:
        if not model or not model.strip():
            raise LLMError("an LLM model name is needed (e.g. --llm openai/gpt-4o-mini)")
        self.model = model.strip()
        self.name = f"llm:{self.model}"
        self.api_base = api_base
        self.api_key = api_key
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = backoff_s
        self.stream = stream
        self.json_mode = json_mode
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_params = dict(extra_params or {})
        self.response_schema = response_schema
        self._format_mode: str | None = None

    def complete(
        self, messages: list[dict[str, str]], usage: LLMUsage, deadline: float, schema: dict[str, Any] | None = None
    ) -> str:
        """The answer's text, retrying until `deadline` (time.monotonic()); CallFailed when there is none.

        `schema`: this call's answer schema (else `response_schema`)."""
        return self._with_retries_sync(messages, usage, deadline, schema)

    async def acomplete(
        self, messages: list[dict[str, str]], usage: LLMUsage, deadline: float, schema: dict[str, Any] | None = None
    ) -> str:
        """As `complete`, on the event loop (litellm imported beforehand, off the loop)."""
        return await self._with_retries_async(messages, usage, deadline, schema)

    def self_hosted(self) -> bool:
        """A server of the user's own (an OpenAI-compatible api_base, Ollama, vLLM): grammar-constrained
        decoding that honours json_schema, including string lengths (issue 12)."""
        return bool(self.api_base) or self.model.startswith(SELF_HOSTED_PREFIXES)

    def _params(
        self, messages: list[dict[str, str]], timeout: float, schema: dict[str, Any] | None = None
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
        # issue 12: max_tokens sized to the answer's schema unless set
        schema = schema or self.response_schema
        max_tokens = self.max_tokens or (answer_token_limit(schema) if schema else None)
        if max_tokens:
            params["max_tokens"] = max_tokens
        fmt = self._response_format(schema)
        if fmt is not None:
            params["response_format"] = fmt
        if self.stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        params.update(self.extra_params)
        if self._format_mode == "grammar" and schema is not None:
            # llama.cpp takes a GBNF `grammar` in the body (instead of response_format, not with it)
            params["extra_body"] = {**params.get("extra_body", {}), "grammar": answer_grammar(schema)}
        return params

    def _response_format(self, schema: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if self._format_mode is None:
            self._format_mode = self._pick_format_mode()
        mode = self._format_mode
        schema = schema or self.response_schema
        if mode == "schema" and schema is not None:
            return response_format(schema)
        if mode == "object":
            return {"type": "json_object"}
        return None

    def _pick_format_mode(self) -> str:
        """json_schema where the server enforces it (self-hosted, or litellm says so), else JSON mode.

        Issue 12: a self-hosted server (llama.cpp, vLLM, Ollama, LM Studio) turns json_schema into
        a grammar; json_object is not enforced by llama.cpp, and a small model then rambles. A server
        that refuses json_schema with a 400 is asked again without it (`_drop_response_format`).
        """
        mode = self.json_mode
        if mode == "auto" and self.self_hosted():
            mode = "schema"
        if mode == "auto":
            try:
                mode = "schema" if import_litellm().supports_response_schema(self.model) else "object"
            except Exception:  # unknown provider: plain JSON mode
                mode = "object"
        return mode

    def _with_retries_sync(
        self, messages: list[dict[str, str]], usage: LLMUsage, deadline: float, schema: dict[str, Any] | None = None
    ) -> str:
        litellm = import_litellm()
        attempt = 0
        while True:
            remaining = self._time_left(deadline)
            usage.calls += 1
            try:
                response = litellm.completion(**self._params(messages, remaining, schema))
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

    async def _with_retries_async(
        self, messages: list[dict[str, str]], usage: LLMUsage, deadline: float, schema: dict[str, Any] | None = None
    ) -> str:
        litellm = import_litellm()  # already imported by atag_window
        attempt = 0
        while True:
            remaining = self._time_left(deadline)
            usage.calls += 1
            try:
                # wait_for as well as litellm's timeout: the deadline holds even if a provider
                # adapter ignores `timeout` or a stream stalls between chunks.
                response = await asyncio.wait_for(self._acall(litellm, messages, remaining, schema), remaining)
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
            raise CallFailed("timeout", f"LLM timeout after {self.timeout_s:g} s")
        return remaining

    def _retry_wait(self, exc: BaseException, attempt: int, deadline: float) -> float | None:
        """The decision after a failed attempt, shared by the sync and async loops.

        None: ask again at once (response_format was dropped; not counted as a retry). A number: back
        off that long, then retry. Raises CallFailed when the failure is final or the deadline is near.
        """
        if self._drop_response_format(exc):
            return None
        kind, message = self._classify(exc)
        wait = self._backoff(attempt)
        if kind in ("config", "output") or attempt >= self.max_retries or time.monotonic() + wait >= deadline:
            raise CallFailed(kind, message) from None
        return wait

    async def _acall(
        self, litellm: Any, messages: list[dict[str, str]], timeout: float, schema: dict[str, Any] | None = None
    ) -> Any:
        response = await litellm.acompletion(**self._params(messages, timeout, schema))
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
        if not any(word in str(exc) for word in ("response_format", "json_schema", "grammar")):
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
            raise CallFailed("output", "LLM returned no response")
        u = getattr(response, "usage", None)
        if u is not None:
            usage.prompt_tokens += int(getattr(u, "prompt_tokens", 0) or 0)
            usage.completion_tokens += int(getattr(u, "completion_tokens", 0) or 0)
        timings = getattr(response, "timings", None)  # llama.cpp's own per-request figures
        if not isinstance(timings, dict):
            timings = {}
        details = getattr(u, "prompt_tokens_details", None)
        usage.cached_tokens += int(getattr(details, "cached_tokens", 0) or timings.get("cache_n") or 0)
        usage.server_prompt_ms += float(timings.get("prompt_ms") or 0.0)
        usage.server_gen_ms += float(timings.get("predicted_ms") or 0.0)
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
        if isinstance(exc, CallFailed):
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

"""Pick a tagger by name: `rules` (offline default), `llm`, or `hybrid` (rules, then the LLM)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from copilot.errors import CopilotError
from copilot.tagging.base import Tagger

if TYPE_CHECKING:
    from copilot.tagging.rubric import Rubric

TAGGER_KINDS = ("rules", "llm", "hybrid")


class TaggerConfigError(CopilotError):
    """A tagger that cannot be built as asked (unknown kind, LLM without a model)."""


def build_tagger(
    kind: str,
    rubric: "Rubric",
    llm_model: str | None = None,
    api_base: str | None = None,
    *,
    api_key: str | None = None,
    **llm_options: Any,
) -> Tagger:
    """The tagger for `--tagger KIND`. `llm_options` go to `LLMTagger` (timeout_s, window_turns...).

    `llm_model` / `api_base` default to $COPILOT_LLM / $COPILOT_LLM_API_BASE. The API key defaults to the provider's usual environment variable (litellm reads
    OPENAI_API_KEY, ANTHROPIC_API_KEY, ...); `COPILOT_LLM_API_KEY` overrides it, which is
    handy for a local OpenAI-compatible server that wants any non-empty key.
    """
    if kind not in TAGGER_KINDS:
        raise TaggerConfigError(f"unknown tagger {kind!r} (choose from {', '.join(TAGGER_KINDS)})")
    if kind == "rules":
        from copilot.tagging.rules import RulesTagger

        return RulesTagger(rubric)
    llm_model = llm_model or os.environ.get("COPILOT_LLM") or None
    api_base = api_base or os.environ.get("COPILOT_LLM_API_BASE") or None
    if not llm_model or not llm_model.strip():
        raise TaggerConfigError(
            f"--tagger {kind} needs an LLM model: pass --llm MODEL or set COPILOT_LLM (a litellm model "
            "string such as openai/gpt-4o-mini, ollama/llama3.1, or openai/<name> with --api-base URL)"
        )
    from copilot.tagging.llm import LLMTagger

    timeout = os.environ.get("COPILOT_LLM_TIMEOUT_S", "").strip()  # issue 12: a slower machine or model
    if timeout:
        try:
            llm_options.setdefault("timeout_s", float(timeout))
        except ValueError:
            raise TaggerConfigError(f"COPILOT_LLM_TIMEOUT_S={timeout!r} is not a number of seconds") from None
    if llm_model.strip().startswith("local:"):
        # issue 12: `local:PATH.gguf` / `local:smollm2` starts llama.cpp in-process (copilot/tagging/local_llm.py)
        from copilot.tagging.local_llm import start_local

        if api_base:
            raise TaggerConfigError("--llm local:... serves its own model; drop --api-base")
        server = start_local(llm_model)
        llm_model, api_base = server.model, server.api_base
        llm_options.setdefault("extra_params", {"extra_body": {"cache_prompt": True}})  # llama.cpp's prefix reuse
    key = api_key or os.environ.get("COPILOT_LLM_API_KEY") or None
    if key is None and api_base and llm_model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
        key = "local"  # OpenAI-compatible local servers (llama.cpp, vLLM) accept any key; the client needs one
    # Import and warm litellm now, before any live session starts, so no event loop pays for it.
    llm = LLMTagger(rubric, llm_model, api_base=api_base, api_key=key, **llm_options).prepare()
    if kind == "llm":
        return llm
    from copilot.tagging.hybrid import HybridTagger
    from copilot.tagging.rules import RulesTagger

    return HybridTagger(RulesTagger(rubric), llm)

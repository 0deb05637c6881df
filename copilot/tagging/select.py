"""The one tagger factory: a tagger by name for `copilot tag|eval`, the live path and the benchmarks.

- `rules`: the offline tagger (cues + the trained classifier when there is one);
  `rules-only` and `classifier-only` are its two halves (for `eval --parts`);
- `llm`: any litellm model; `hybrid`: rules, then the LLM's verdict on them.

The live path uses `build_tagger("rules", ...)` inline and `build_llm(...)` for its refiner.
"""

from __future__ import annotations

import os
from typing import Any

from copilot.errors import CopilotError
from copilot.tagging.base import Tagger
from copilot.tagging.hybrid import HybridTagger
from copilot.tagging.kinds import RULES_KINDS, TAGGER_KINDS
from copilot.tagging.llm import LLMTagger
from copilot.tagging.rubric import Rubric
from copilot.tagging.rules import Mode, RulesTagger

RULES_MODES: dict[str, Mode] = dict(zip(RULES_KINDS, ("combined", "rules-only", "classifier-only")))


class TaggerConfigError(CopilotError):
    """A tagger that cannot be built as asked (unknown kind, LLM without a model)."""


def build_tagger(
    kind: str,
    rubric: Rubric,
    llm_model: str | None = None,
    api_base: str | None = None,
    *,
    api_key: str | None = None,
    syntax: bool = False,
    **llm_options: Any,
) -> Tagger:
    """The tagger for `--tagger KIND`. `syntax` adds POS/dependency cues to the rules kinds (not to
    `hybrid`'s rules, as before); `llm_options` go to `LLMTagger` (timeout_s, window_turns...)."""
    if kind not in TAGGER_KINDS:
        raise TaggerConfigError(f"unknown tagger {kind!r} (choose from {', '.join(TAGGER_KINDS)})")
    if kind in RULES_MODES:
        return RulesTagger(rubric, mode=RULES_MODES[kind], syntax=syntax)
    llm = build_llm(rubric, llm_model, api_base, api_key=api_key, kind=kind, **llm_options)
    if kind == "llm":
        return llm
    return HybridTagger(RulesTagger(rubric), llm)


def build_llm(
    rubric: Rubric,
    llm_model: str | None = None,
    api_base: str | None = None,
    *,
    api_key: str | None = None,
    kind: str = "llm",
    **llm_options: Any,
) -> LLMTagger:
    """The LLM tagger, with litellm imported and warmed now, before any live session starts, so
    no event loop pays for it.

    `llm_model` / `api_base` default to $COPILOT_LLM / $COPILOT_LLM_API_BASE. The API key defaults
    to the provider's usual environment variable (litellm reads OPENAI_API_KEY, ANTHROPIC_API_KEY,
    ...); `COPILOT_LLM_API_KEY` overrides it, which is handy for a local OpenAI-compatible server
    that wants any non-empty key.
    """
    llm_model = llm_model or os.environ.get("COPILOT_LLM") or None
    api_base = api_base or os.environ.get("COPILOT_LLM_API_BASE") or None
    if not llm_model or not llm_model.strip():
        raise TaggerConfigError(
            f"--tagger {kind} needs an LLM model: pass --llm MODEL or set COPILOT_LLM (a litellm model "
            "string such as openai/gpt-4o-mini, ollama/llama3.1, or openai/<name> with --api-base URL)"
        )
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
        # the schema as llama.cpp GBNF with no room for indentation: fewer tokens, same answer (llm_schema)
        llm_options.setdefault("json_mode", "grammar")
    key = api_key or os.environ.get("COPILOT_LLM_API_KEY") or None
    if key is None and api_base and llm_model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
        key = "local"  # OpenAI-compatible local servers (llama.cpp, vLLM) accept any key; the client needs one
    return LLMTagger(rubric, llm_model, api_base=api_base, api_key=key, **llm_options).prepare()


def rules_tagger(tagger: Tagger) -> RulesTagger | None:
    """The rules tagger inside `tagger`, if any (to say when it runs without its classifier)."""
    if isinstance(tagger, RulesTagger):
        return tagger
    if isinstance(tagger, HybridTagger) and isinstance(tagger.rules, RulesTagger):
        return tagger.rules
    return None

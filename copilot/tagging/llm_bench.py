"""Per-call figures of any LLM tagger: schema-valid rate, timeouts, latency (first and warm), tokens, cost.

`CallLog` hooks an `LLMTagger` (`on_result`) and keeps one `CallRecord` per window (one turn or
utterance). `copilot eval --tagger llm|hybrid --llm MODEL` and `copilot bench tagger --llm MODEL`
print its summary next to the macro-F1. "Schema-valid" is checked on the model's raw text, with
no leniency: one JSON object whose only key is `tags`, a list of objects with exactly the keys
`segment_id, tag, quote, rationale, confidence`, `tag` a rubric id, `confidence` a number in [0, 1].
(The tagger's own parser is lenient about the envelope; this is the figure of the server's
constrained output.) Whether a quote was verbatim is counted apart: `dropped_tags`.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from copilot.tagging.llm import LLMResult

ITEM_KEYS = {"segment_id", "tag", "quote", "rationale", "confidence"}


def schema_valid(raw: str, tag_ids: Sequence[str]) -> bool:
    """The raw answer, taken as is, matches the answer schema's shape (see the module doc)."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return False
    if not isinstance(data, dict) or set(data) != {"tags"} or not isinstance(data["tags"], list):
        return False
    for item in data["tags"]:
        if not isinstance(item, dict) or set(item) != ITEM_KEYS:
            return False
        if item["tag"] not in tag_ids or not all(
            isinstance(item[k], str) for k in ("segment_id", "quote", "rationale")
        ):
            return False
        c = item["confidence"]
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c <= 1:
            return False
    return True


@dataclass
class CallRecord:
    latency_s: float
    ok: bool
    error_kind: str | None
    schema_valid: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    priced: bool
    tags: int
    dropped_tags: int
    cached_tokens: int = 0  # prompt tokens the server read from its cache (llama.cpp: cache_n)
    server_prompt_ms: float = 0.0  # the server's own time reading the rest of the prompt (0: not reported)
    server_gen_ms: float = 0.0  # and generating the answer


def _pct(xs: Sequence[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class CallLog:
    """Every call of one tagger, in order; `attach(tagger)` starts recording."""

    tag_ids: list[str]
    records: list[CallRecord] = field(default_factory=list)
    model: str = ""
    primed_s: float | None = None

    @classmethod
    def attach(cls, llm: Any) -> "CallLog":
        log = cls(tag_ids=list(llm.rubric.tag_ids), model=llm.model, primed_s=getattr(llm, "primed_s", None))
        llm.on_result = log.add
        return log

    def add(self, result: LLMResult) -> None:
        u = result.usage
        self.records.append(
            CallRecord(
                latency_s=u.latency_s,
                ok=result.ok,
                error_kind=result.error_kind,
                schema_valid=result.error_kind not in ("timeout", "transient", "config", "unreachable")
                and schema_valid(result.raw, self.tag_ids),
                prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens,
                cost_usd=u.cost_usd,
                priced=u.priced_calls > 0,
                tags=len(result.tags),
                dropped_tags=u.dropped_tags,
                cached_tokens=u.cached_tokens,
                server_prompt_ms=u.server_prompt_ms,
                server_gen_ms=u.server_gen_ms,
            )
        )

    def summary(self) -> dict[str, Any]:
        r = self.records
        n = len(r)
        answered = [x for x in r if x.error_kind not in ("timeout", "transient", "config", "unreachable")]
        lat = [x.latency_s * 1000 for x in r]
        warm = lat[1:]
        kinds: dict[str, int] = {}
        for x in r:
            if x.error_kind:
                kinds[x.error_kind] = kinds.get(x.error_kind, 0) + 1
        priced = [x for x in r if x.priced]
        return {
            "model": self.model,
            "calls": n,
            "answered": len(answered),
            "schema_valid": sum(x.schema_valid for x in r),
            "schema_valid_rate": round(sum(x.schema_valid for x in answered) / len(answered), 4) if answered else None,
            "timeouts": kinds.get("timeout", 0),
            "errors": kinds,
            "prefix_primed_s": round(self.primed_s, 3) if self.primed_s is not None else None,
            "latency_ms": {
                "first": round(lat[0], 1) if lat else None,
                "median": round(statistics.median(lat), 1) if lat else None,
                "p95": round(_pct(lat, 95), 1),
                "warm_median": round(statistics.median(warm), 1) if warm else None,
                "warm_p95": round(_pct(warm, 95), 1) if warm else None,
                "max": round(max(lat), 1) if lat else None,
            },
            "tokens_per_call": {
                "prompt_mean": round(sum(x.prompt_tokens for x in r) / n, 1) if n else 0,
                "completion_mean": round(sum(x.completion_tokens for x in r) / n, 1) if n else 0,
                "completion_max": max((x.completion_tokens for x in r), default=0),
                # of the prompt: read from the server's cache / evaluated by this call (cached 0: not reported)
                "prompt_cached_mean": round(sum(x.cached_tokens for x in r) / n, 1) if n else 0,
                "prompt_evaluated_mean": round(sum(x.prompt_tokens - x.cached_tokens for x in r) / n, 1) if n else 0,
            },
            "server_ms": _server_ms(answered),
            "tokens_total": {
                "prompt": sum(x.prompt_tokens for x in r),
                "completion": sum(x.completion_tokens for x in r),
            },
            "cost_usd": round(sum(x.cost_usd for x in priced), 6) if priced else None,  # None: litellm has no price
            "tags_kept": sum(x.tags for x in r),
            "tags_dropped": sum(x.dropped_tags for x in r),
        }

    def to_text(self) -> str:
        s = self.summary()
        srv = s["server_ms"]
        if not s["calls"]:
            return f"LLM {s['model']}: no calls"
        lat = s["latency_ms"]
        tok = s["tokens_per_call"]
        rate = "n/a" if s["schema_valid_rate"] is None else f"{100 * s['schema_valid_rate']:.1f} %"
        cost = "unknown (litellm has no price for this model)" if s["cost_usd"] is None else f"${s['cost_usd']:.6f}"
        errors = ", ".join(f"{k} {v}" for k, v in s["errors"].items()) or "none"
        primed = (
            ""
            if s["prefix_primed_s"] is None
            else f"; rubric prefix cached in {s['prefix_primed_s']:.1f} s before the first call"
        )
        return "\n".join(
            [
                f"LLM {s['model']}: {s['calls']} calls (one per item){primed}",
                f"  schema-valid answers: {s['schema_valid']}/{s['answered']} answered ({rate}); timeouts {s['timeouts']}; "
                f"errors: {errors}",
                f"  latency per call: first {lat['first']:.0f} ms; median {lat['median']:.0f} ms, p95 {lat['p95']:.0f} ms; "
                f"warm (after the first) median {lat['warm_median'] or 0:.0f} ms, p95 {lat['warm_p95'] or 0:.0f} ms",
                f"  tokens per call: prompt {tok['prompt_mean']:.0f}, completion {tok['completion_mean']:.0f} "
                f"(max {tok['completion_max']}); cost {cost}",
                f"  tags kept {s['tags_kept']}, dropped {s['tags_dropped']} (quote not verbatim, wrong id or speaker)",
            ]
            + (
                [
                    f"  prompt tokens per call: {tok['prompt_cached_mean']:.0f} from the server's cache, "
                    f"{tok['prompt_evaluated_mean']:.0f} evaluated; server time per call: prompt "
                    f"{srv['prompt_mean']:.0f} ms ({srv['prompt_per_token']:.1f} ms a token), generation "
                    f"{srv['gen_mean']:.0f} ms ({srv['gen_per_token']:.1f} ms a token)"
                ]
                if srv
                else []
            )
        )


def _server_ms(records: Sequence[CallRecord]) -> dict[str, float] | None:
    """The server's own split of its time (llama.cpp's `timings`), or None where it reports none.

    Load-independent-ish evidence of where a call's time goes: reading the uncached prompt vs generating."""
    r = [x for x in records if x.server_prompt_ms or x.server_gen_ms]
    if not r:
        return None
    evaluated = sum(x.prompt_tokens - x.cached_tokens for x in r)
    generated = sum(x.completion_tokens for x in r)
    return {
        "prompt_mean": round(sum(x.server_prompt_ms for x in r) / len(r), 1),
        "gen_mean": round(sum(x.server_gen_ms for x in r) / len(r), 1),
        "prompt_per_token": round(sum(x.server_prompt_ms for x in r) / evaluated, 2) if evaluated > 0 else 0.0,
        "gen_per_token": round(sum(x.server_gen_ms for x in r) / generated, 2) if generated > 0 else 0.0,
    }


def llm_of(tagger: Any) -> Any:
    """The LLMTagger inside `tagger` (itself, or a HybridTagger's), or None."""
    from copilot.tagging.llm import LLMTagger

    if isinstance(tagger, LLMTagger):
        return tagger
    inner = getattr(tagger, "llm", None)
    return inner if isinstance(inner, LLMTagger) else None


def spread(items: Sequence[Any], limit: int | None) -> list[Any]:
    """At most `limit` items taken evenly across the set (labelled sets are often grouped by label)."""
    items = list(items)
    if not limit or limit >= len(items):
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]

"""What the LLM may answer and how much it may read: the answer's JSON schema, `max_tokens`, the prompt budget.

- **The schema** (`response_schema`) is strict: `tag` is an enum of the rubric's tag ids, at
  most `MAX_TAGS_PER_TARGET` tags per target segment. Servers that compile a schema into a grammar (llama.cpp, Ollama, vLLM) cannot emit
  anything else, so a small model neither rambles nor invents ids. For such self-hosted servers
  the strings are also bounded (`maxLength`): quotes are short spans, rationales one clause.
  Hosted APIs (OpenAI strict mode) reject `maxLength`, so they get the same schema without it.
- **`max_tokens`** (`answer_token_limit`) is sized to that schema: the longest answer the schema
  allows, in tokens, plus a margin. With one target per call (one settled turn) it is ~200.
- **The prompt budget** (`PromptBudget`): the rubric and instructions are a fixed prefix (the
  server reuses its KV cache for it); the target turn is always sent whole; the previous turns
  fill what is left of `context_tokens`, newest first, and older ones are left out. Tokens are
  counted with the server's own tokenizer where it exposes one (llama.cpp's `/tokenize`: once,
  to calibrate characters per token on the rubric), else estimated at 4 characters a token.
See docs/llm.md.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence
from urllib import error as urlerror
from urllib import request as urlrequest

from copilot.events import Segment

log = logging.getLogger(__name__)

MAX_TAGS_PER_TARGET = 2  # "a segment may have no tag (most do not), one tag, or occasionally two"
# Self-hosted (bounded) answers: one tag per target. Measured with SmolLM2 on llama.cpp, a small model
# fills every slot the schema allows (the same tag twice), and the answer's length is the call's latency.
# A rules tag the LLM has no slot for is disputed (faded), never deleted (docs/llm.md).
MAX_TAGS_PER_TARGET_BOUNDED = 1
MAX_TAGS_PER_CALL = 6
QUOTE_MAX_CHARS = 100  # a quote is the shortest span that shows the behaviour
RATIONALE_MAX_CHARS = 40
SEGMENT_ID_MAX_CHARS = 32  # ids are short ("seg_ab12cd34", "turn_..."): for sizing max_tokens
CONFIDENCE_LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
CHARS_PER_TOKEN = 4.0  # English text through a BPE tokenizer, when the server cannot tell us
DEFAULT_CONTEXT_TOKENS = 400  # previous turns per call, after the fixed prefix


def response_schema(tag_ids: Sequence[str], targets: Sequence[Segment], *, bounded: bool) -> dict[str, Any]:
    """The strict JSON schema of one answer about the segments `targets`.

    `bounded` (a self-hosted server, whose grammar engine compiles each request's schema
    cheaply): `segment_id` is an enum of the targets, `quote` an enum of the targets' clauses
    (`quote_options`: verbatim by construction) and the rationale has a `maxLength`, so a small
    model can neither invent an id nor loop in a quote. Hosted APIs (OpenAI's strict mode
    refuses `maxLength`, and compiles each new schema once, slowly) get a schema that depends
    only on the rubric and the number of targets, and rely on `max_tokens`.
    `confidence` is one of 0.1 ... 1.0: a free number lets a small model spend tokens on digits.
    """
    n = max(1, len(targets))
    seg_id: dict[str, Any] = {"type": "string"}
    quote: dict[str, Any] = {"type": "string"}
    rationale: dict[str, Any] = {"type": "string"}
    if bounded:
        seg_id = {"type": "string", "enum": list(dict.fromkeys(s.id for s in targets))}
        options = quote_options([s.text for s in targets])
        quote = {"type": "string", "enum": options} if options else {"type": "string", "maxLength": QUOTE_MAX_CHARS}
        rationale["maxLength"] = RATIONALE_MAX_CHARS
    item = {
        "type": "object",
        "properties": {
            "segment_id": seg_id,
            "tag": {"type": "string", "enum": list(tag_ids)},
            "quote": quote,
            "rationale": rationale,
            "confidence": {"type": "number", "enum": CONFIDENCE_LEVELS},
        },
        "required": ["segment_id", "tag", "quote", "rationale", "confidence"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": item,
                "maxItems": min(
                    MAX_TAGS_PER_CALL, n * (MAX_TAGS_PER_TARGET_BOUNDED if bounded else MAX_TAGS_PER_TARGET)
                ),
            }
        },
        "required": ["tags"],
        "additionalProperties": False,
    }


_CLAUSE_END = re.compile(r"(?<=[.;:?!,])\s+")


def quote_options(texts: Sequence[str], max_words: int = 14) -> list[str]:
    """The spans a quote may be: each target's clauses (split at punctuation), long ones in word chunks.

    ASR text often has no punctuation: then a turn is cut into chunks of `max_words` words,
    overlapping by half so a behaviour that straddles a cut is still inside one chunk.
    """
    out: list[str] = []
    for text in texts:
        for clause in _CLAUSE_END.split(" ".join(text.split())):
            words = clause.split()
            if not words:
                continue
            if len(words) <= max_words:
                out.append(" ".join(words))
                continue
            step = max(1, max_words // 2)
            for i in range(0, len(words) - step, step):
                out.append(" ".join(words[i : i + max_words]))
    return list(dict.fromkeys(q for q in out if any(c.isalnum() for c in q)))


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-style `response_format` for a schema (litellm maps it for Ollama, vLLM, ...)."""
    return {"type": "json_schema", "json_schema": {"name": "rubric_tags", "schema": schema, "strict": True}}


# --------------------------------------------------------------------------- compact grammar (llama.cpp)

# A character of free text in an answer: letters, space and light punctuation (no digits, quotes or escapes).
_GBNF_WORD_CHAR = "[a-zA-Z ,.;:'()-]"


def _gbnf_literal(text: str) -> str:
    """A GBNF string literal that matches exactly `text`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


def answer_grammar(schema: dict[str, Any]) -> str:
    """A llama.cpp GBNF grammar for the answer `schema` (`response_schema`'s shape): compact JSON.

    llama.cpp's json_schema grammar lets the model pick its whitespace, and a small model
    pretty-prints: measured with SmolLM2, 88-100 tokens an answer where the compact form took 76-86
    on the same items, and each token costs a forward pass (20-50 ms on these 2 busy cores). This grammar
    allows the same JSON with one space after ':' and ',' (as the prompt's example writes it, and
    as BPE vocabularies merge ' "'), keys in the schema's order, and free text (the rationale) in
    words: a subset of what the schema allows, so every answer is still valid against it.
    """
    rules: dict[str, str] = {}

    def value(name: str, prop: dict[str, Any]) -> str:
        if "enum" in prop:
            rules[name] = " | ".join(_gbnf_literal(json.dumps(v, ensure_ascii=False)) for v in prop["enum"])
        elif prop.get("type") == "string":
            # free text (the rationale): words and light punctuation only, so maxLength bounds the output (a JSON
            # escape such as \u00e9 is 6 characters for 1) and no digit runs (SmolLM2 wrote "2018 2019 2020 ...").
            n = prop.get("maxLength")
            rules[name] = '"\\"" word-char' + (f"{{0,{int(n)}}}" if n is not None else "*") + ' "\\""'
        elif prop.get("type") in ("number", "integer"):
            rules[name] = '"-"? [0-9]{1,6} ("." [0-9]{1,6})?'
        else:
            raise ValueError(f"answer_grammar: unsupported property {prop!r}")
        return name

    tags = schema["properties"]["tags"]
    item = tags["items"]
    parts = []
    for i, (key, prop) in enumerate(item["properties"].items()):
        head = ("{" if i == 0 else ", ") + json.dumps(key) + ": "
        parts.append(f"{_gbnf_literal(head)} {value('v-' + key.replace('_', '-'), prop)}")
    rules["item"] = " ".join(parts) + ' "}"'
    n_items = int(tags.get("maxItems", MAX_TAGS_PER_CALL))
    more = f' ("," " " item){{0,{n_items - 1}}}' if n_items > 1 else ""
    rules["root"] = _gbnf_literal('{"tags": [') + f' (item{more})? "]}}"'
    rules["word-char"] = _GBNF_WORD_CHAR
    order = ["root", "item", *(k for k in rules if k.startswith("v-")), "word-char"]
    return "\n".join(f"{k} ::= {rules[k]}" for k in order) + "\n"


def answer_token_limit(schema: dict[str, Any]) -> int:
    """`max_tokens` for the longest answer `schema` allows, with a margin.

    JSON punctuation and keys tokenise at roughly one token per 3 characters; free text at
    `CHARS_PER_TOKEN`. Unbounded strings (hosted models) are counted at the bounded lengths: a
    capable model keeps to "shortest span", and an answer cut short is refused, never guessed at.
    """
    tags = schema["properties"]["tags"]
    props = tags["items"]["properties"]
    n_items = int(tags.get("maxItems", MAX_TAGS_PER_CALL))

    def text_tokens(prop: dict[str, Any], default_chars: int) -> float:
        chars = (
            max((len(str(v)) for v in prop["enum"]), default=0)
            if "enum" in prop
            else prop.get("maxLength", default_chars)
        )
        return chars / 3 + 2  # a small model's odd words split into short tokens; the quotes

    def enum_tokens(prop: dict[str, Any]) -> float:
        # an unconstrained string (a schema without enums): counted as an id
        return max((len(str(v)) for v in prop.get("enum", ())), default=SEGMENT_ID_MAX_CHARS) / 3 + 2

    seg = props["segment_id"]
    seg_tokens = enum_tokens(seg) if "enum" in seg else SEGMENT_ID_MAX_CHARS / 3 + 2

    keys = len(json.dumps({k: "" for k in props})) / 3  # keys, quotes, colons, commas
    per_item = (
        keys
        + seg_tokens
        + enum_tokens(props["tag"])
        + text_tokens(props["quote"], QUOTE_MAX_CHARS)
        + text_tokens(props["rationale"], RATIONALE_MAX_CHARS)
        + 3  # a confidence such as 0.8
        + 20
    )  # newlines and indentation: llama.cpp's JSON grammar lets the model pretty-print
    envelope = 8  # {"tags": [ ... ]} and the end of turn
    return int(math.ceil((envelope + n_items * per_item) * 1.5))  # margin: tokenizers differ, whitespace varies


# --------------------------------------------------------------------------- token budget


class TokenCounter:
    """Counts tokens the way the server does where it can tell us, else estimates.

    `calibrate(text)` asks an OpenAI-compatible llama.cpp server's `/tokenize` once (the
    rubric prefix is a good sample) and keeps its characters-per-token ratio; counting a turn
    then costs no request. Servers without `/tokenize` (hosted APIs, Ollama) keep the estimate.
    """

    def __init__(self, chars_per_token: float = CHARS_PER_TOKEN) -> None:
        self.chars_per_token = chars_per_token
        self.measured = False
        self.prefix_tokens: int | None = None  # the calibration text's exact count

    def count(self, text: str) -> int:
        return int(math.ceil(len(text) / self.chars_per_token)) if text else 0

    def calibrate(self, api_base: str | None, text: str, timeout_s: float = 3.0) -> bool:
        """Measure `text` with the server's tokenizer; True if it answered."""
        n = server_token_count(api_base, text, timeout_s) if api_base and text else None
        if not n:
            return False
        self.chars_per_token = max(1.0, len(text) / n)
        self.prefix_tokens = n
        self.measured = True
        return True


def server_token_count(api_base: str | None, text: str, timeout_s: float = 3.0) -> int | None:
    """Tokens in `text` by llama.cpp's `POST /tokenize` (at the server root), or None."""
    if not api_base:
        return None
    root = api_base.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    body = json.dumps({"content": text, "add_special": False}).encode()
    req = urlrequest.Request(root + "/tokenize", data=body, headers={"Content-Type": "application/json"})
    try:
        with urlrequest.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (a configured local URL)
            tokens = json.loads(resp.read()).get("tokens")
    except (urlerror.URLError, OSError, ValueError, AttributeError) as exc:
        log.debug("no /tokenize at %s: %s", root, exc)
        return None
    return len(tokens) if isinstance(tokens, list) else None


@dataclass
class PromptBudget:
    """How many tokens of previous turns one call may carry (the target turns always go whole)."""

    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    max_turns: int = 6

    def fit(
        self, window: Sequence[Segment], targets: set[str], counter: TokenCounter, line: Any = None
    ) -> list[Segment]:
        """`window` without its oldest context turns beyond the budget.

        Context turns are kept newest first while they fit; those between targets are context
        too (the interviewer's reply between two candidate turns) and are counted the same way.
        `line(seg)` renders a turn as the prompt shows it (for counting).
        """
        render = line or (lambda s: f"   [{s.id}] {(s.speaker or 'unknown').upper()}: {' '.join(s.text.split())}")
        context = [s for s in window if s.id not in targets]
        keep: set[str] = set()
        used = 0
        for seg in reversed(context[-self.max_turns :] if self.max_turns > 0 else []):
            cost = counter.count(render(seg)) + 1  # the newline
            if used + cost > self.context_tokens:
                break
            used += cost
            keep.add(seg.id)
        return [s for s in window if s.id in targets or s.id in keep]


def prime_prefix_cache(api_base: str, system: str, timeout_s: float = 120.0) -> float | None:
    """Have a llama.cpp server read the rubric prefix once, before the session, outside any deadline.

    The first call otherwise pays for the whole prefix (~900 tokens) inside its 8 s deadline; on
    busy CPUs that alone can exceed it, and a call cancelled mid-prompt leaves no cache behind.
    One token is generated. Returns the seconds it took, or None if the server did not answer.
    """
    import time

    body = json.dumps(
        {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": "ready"}],
            "max_tokens": 1,
            "temperature": 0,
            "cache_prompt": True,
        }
    ).encode()
    req = urlrequest.Request(
        api_base.rstrip("/") + "/chat/completions",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer local"},
    )
    t0 = time.monotonic()
    try:
        with urlrequest.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (the configured local server)
            resp.read()
    except (urlerror.URLError, OSError, ValueError) as exc:
        log.info("could not prime the prompt cache at %s: %s", api_base, exc)
        return None
    return time.monotonic() - t0

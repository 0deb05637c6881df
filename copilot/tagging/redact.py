"""Redaction before a cloud LLM: contact details and identifiers never leave the machine.

When the LLM endpoint is not on this machine, transcript text sent to it has emails, phone
numbers, URLs and long digit strings (account, ID, card numbers) replaced by placeholders such as
`[EMAIL_1]`. The same value gets the same placeholder for the whole session, so the model still
sees that two mentions are one thing. Quotes that come back are mapped back locally, so evidence
is checked against, and shown as, the real transcript. Only counts are ever logged.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Callable
from urllib.parse import urlsplit

# Order matters: a URL or email contains digits and dots that the later patterns would split.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)),
    ("PHONE", re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){2,4}(?!\w)")),
    ("NUMBER", re.compile(r"(?<!\w)\d(?:[\s-]?\d){5,}(?!\w)")),  # 6+ digits, maybe grouped
]
_PLACEHOLDER = re.compile(r"\[(EMAIL|URL|PHONE|NUMBER)_(\d+)\]")
_LOCAL_PROVIDERS = ("ollama/", "ollama_chat/", "llamafile/", "lm_studio/")
_LOOPBACK = ("localhost", "127.", "::1", "[::1]", "0.0.0.0")


def is_local_endpoint(model: str, api_base: str | None) -> bool:
    """Whether the LLM runs on this machine: an `api_base` on loopback, or a local-only provider
    (Ollama, llamafile, LM Studio) with its default address."""
    if api_base:
        try:
            host = (urlsplit(api_base if "//" in api_base else f"http://{api_base}").hostname or "").lower()
        except ValueError:
            return False
        return host == "localhost" or host.startswith("127.") or host in ("::1", "0.0.0.0")
    return model.strip().lower().startswith(_LOCAL_PROVIDERS)


class Redactor:
    """Placeholders for one session's sensitive strings; thread-safe."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._next: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # replacements made, by kind (what the log may say)
        self._lock = threading.Lock()

    def _replacer(self, kind: str) -> "Callable[[re.Match[str]], str]":
        return lambda m: self._placeholder(kind, m.group(0))

    def redact(self, text: str) -> str:
        with self._lock:
            for kind, pattern in _PATTERNS:
                text = pattern.sub(self._replacer(kind), text)
        return text

    def _placeholder(self, kind: str, value: str) -> str:
        if _PLACEHOLDER.fullmatch(value):
            return value
        tail = ""
        if kind == "URL":  # sentence punctuation after a URL is not part of it
            stripped = value.rstrip(".,;:!?)")
            value, tail = stripped, value[len(stripped) :]
        return self._placeholder_for(kind, value) + tail

    def _placeholder_for(self, kind: str, value: str) -> str:
        key = (kind, value)
        ph = self._by_value.get(key)
        if ph is None:
            self._next[kind] += 1
            ph = f"[{kind}_{self._next[kind]}]"
            self._by_value[key] = ph
            self._by_placeholder[ph] = value
        self.counts[kind] += 1
        return ph

    def restore(self, text: str) -> str:
        """Put the real values back into text the model returned (its quotes)."""
        with self._lock:
            return _PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)

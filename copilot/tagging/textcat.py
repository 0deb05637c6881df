"""The learned half of the rules tagger: a spaCy `textcat_multilabel` trained on the repo's labelled utterances.

Trained reproducibly (fixed seed, single process, a few seconds) from `copilot/tagging/data/tagger_train.jsonl`
into `<models dir>/tagger/<rubric id>/`, written atomically (temp dir, then rename). The held-out split is
never read here. Training also tunes the per-tag thresholds of the combination with the rules by
k-fold cross-validation on the training split only (out-of-fold probabilities), and stores them in
`meta.json` beside the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import spacy
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch

from copilot.config import models_dir
from copilot.errors import CopilotError, ModelError
from copilot.tagging import cues as C
from copilot.tagging.normalize import Clean
from copilot.tagging.rubric import Rubric, is_interviewer

DATA_DIR = Path(__file__).resolve().parent / "data"  # package data: an installed copy trains from it too
TRAIN_DATA = DATA_DIR / "tagger_train.jsonl"
HELDOUT_DATA = DATA_DIR / "tagger_heldout.jsonl"
SEED = 1234
EPOCHS = 20
META = "meta.json"


class Analysis(Protocol):
    @property
    def rules(self) -> Mapping[str, Any]: ...  # tag -> the best cue hit (its `.weight`)

    @property
    def n_content(self) -> int: ...


class Analyzer(Protocol):
    """What training reads from the rules tagger (`rules.RulesTagger`, which imports this module)."""

    def clean(self, text: str) -> Clean: ...

    def analyze(self, text: str, speaker: str | None = ..., context: Any = ...) -> Analysis: ...

    def classifier_texts(self, analysis: Any) -> list[str]: ...  # the whole utterance, then its clauses


class DataError(CopilotError):
    """A labelled-data file that cannot be read."""


@dataclass
class LabelledItem:
    id: str
    text: str
    speaker: str = "candidate"
    context: Any = None  # str | list[str | {speaker, text}] | None
    labels: list[str] = field(default_factory=list)


def parse_labels(obj: dict[str, Any]) -> list[str] | None:
    """`label` (one tag or "none") or `labels` (list, empty = none); None when the item has neither."""
    if "labels" in obj:
        labels = obj["labels"]
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError("'labels' must be a list of tag ids")
        return [x for x in labels if x != "none"]
    if "label" in obj:
        label = obj["label"]
        if not isinstance(label, str):
            raise ValueError("'label' must be a tag id or 'none'")
        return [] if label in ("none", "") else [label]
    return None


def load_labelled(path: str | Path) -> list[LabelledItem]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labelled data file not found")
    items: list[LabelledItem] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise ValueError("needs a 'text' string")
                labels = parse_labels(obj)
                if labels is None:
                    raise ValueError("needs 'label' or 'labels'")
            except (json.JSONDecodeError, ValueError) as exc:
                raise DataError(f"{path}: line {n}: {exc}") from None
            items.append(
                LabelledItem(
                    id=str(obj.get("id", n)),
                    text=obj["text"],
                    speaker=str(obj.get("speaker") or "candidate"),
                    context=obj.get("context"),
                    labels=labels,
                )
            )
    return items


def data_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def model_dir(rubric_id: str) -> Path:
    return models_dir() / "tagger" / rubric_id


# ---------------------------------------------------------------- training


def train_textcat(
    texts: Sequence[str],
    cats: Sequence[dict[str, float]],
    labels: Sequence[str],
    seed: int = SEED,
    epochs: int = EPOCHS,
):
    """A blank-English pipeline with one `textcat_multilabel` (bag of 1-2-grams): fast to train and run."""
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    tc: Any = nlp.add_pipe(  # spaCy types the pipe as a bare callable
        "textcat_multilabel",
        config={
            "model": {
                "@architectures": "spacy.TextCatBOW.v3",
                "exclusive_classes": False,
                "ngram_size": 2,
                "no_output_layer": False,
                "length": 262144,
            }
        },
    )
    for label in labels:
        tc.add_label(label)
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": c}) for t, c in zip(texts, cats)]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(seed)
    order = list(range(len(examples)))
    for _ in range(epochs):
        rng.shuffle(order)
        for batch in minibatch([examples[i] for i in order], size=8):
            nlp.update(batch, sgd=optimizer, drop=0.1)
    return nlp


def predict(nlp, texts: Sequence[str], labels: Sequence[str], batch_size: int = 256) -> list[dict[str, float]]:
    return [{l: float(doc.cats.get(l, 0.0)) for l in labels} for doc in nlp.pipe(texts, batch_size=batch_size)]


def trainable_labels(rubric_tag_ids: Iterable[str], items: Sequence[LabelledItem]) -> list[str]:
    """Tags of the rubric that the labelled data has positives for (others stay rules-only)."""
    present = {l for it in items for l in it.labels}
    return [t for t in rubric_tag_ids if t in present]


def classifier_items(items: Sequence[LabelledItem]) -> list[LabelledItem]:
    """The classifier learns candidate speech only: interviewer turns are gated out before it runs."""
    return [it for it in items if not is_interviewer(it.speaker)]


def train_for_rubric(
    rubric: Rubric,
    rules: Analyzer,
    data: Path = TRAIN_DATA,
    out: Path | None = None,
    seed: int = SEED,
    folds: int = 5,
    log=None,
) -> Path:
    """Train the classifier for a rubric, tune the combination thresholds by CV, save atomically.

    `rules` is the rubric's rules tagger without a classifier (`RulesTagger(rubric, classifier=False)`):
    its cleaning makes the classifier's input, its cues are what the thresholds combine with.
    """
    items = load_labelled(data)
    labels = trainable_labels(rubric.tag_ids, items)
    out = out or model_dir(rubric.id)
    cls_items = classifier_items(items)
    texts = [rules.clean(it.text).joined() for it in cls_items]
    cats = [{l: 1.0 if l in it.labels else 0.0 for l in labels} for it in cls_items]
    # The rubric's own examples and near misses are labelled data too (never part of the held-out set).
    extra_texts, extra_cats = rubric_examples(rubric, labels, rules)

    # Out-of-fold probabilities for every training item (k-fold; fixed fold assignment), read as the
    # tagger reads them: the best of the whole utterance and its clauses.
    parts = [rules.classifier_texts(rules.analyze(it.text, it.speaker, it.context)) for it in cls_items]
    oof: list[dict[str, float]] = [{} for _ in cls_items]
    order = list(range(len(cls_items)))
    random.Random(seed).shuffle(order)
    for k in range(folds):
        test_idx = order[k::folds]
        test_set = set(test_idx)
        train_idx = [i for i in order if i not in test_set]
        nlp_k = train_textcat(
            [texts[i] for i in train_idx] + extra_texts, [cats[i] for i in train_idx] + extra_cats, labels, seed=seed
        )
        preds = iter(predict(nlp_k, [t for i in test_idx for t in parts[i]], labels))
        for i in test_idx:
            ps = [next(preds) for _ in parts[i]]
            oof[i] = {l: max(p[l] for p in ps) for l in labels}
        if log:
            log(f"fold {k + 1}/{folds} done")
    thresholds, cv_report = tune_thresholds(rules, cls_items, oof, labels)

    nlp = train_textcat(texts + extra_texts, cats + extra_cats, labels, seed=seed)
    meta = {
        "rubric": rubric.id,
        "rubric_version": rubric.version,
        "labels": labels,
        "seed": seed,
        "epochs": EPOCHS,
        "train_data": str(Path(data).name),
        "train_sha": data_digest(Path(data)),
        "train_items": len(cls_items),
        "rubric_examples": len(extra_texts),
        "thresholds": thresholds,
        "cv": cv_report,
    }
    _write_atomically(out, nlp, meta)
    return out


def rubric_examples(rubric: Rubric, labels: Sequence[str], rules: Analyzer) -> tuple[list[str], list[dict[str, float]]]:
    texts: list[str] = []
    cats: list[dict[str, float]] = []
    for t in rubric.tags:
        if t.id not in labels:
            continue
        for ex in t.examples:
            texts.append(rules.clean(ex).joined())
            cats.append({l: 1.0 if l == t.id else 0.0 for l in labels})
        for ex in t.near_misses:
            texts.append(rules.clean(ex).joined())
            cats.append({l: 0.0 for l in labels})
    return texts, cats


# ---------------------------------------------------------------- threshold tuning (training split only)
# The combination of rules and classifier that `rules.RulesTagger.decide` applies; tuned here, beside training.


def tune_thresholds(
    rules: Analyzer, items: Sequence[LabelledItem], oof: Sequence[dict[str, float]], labels: Sequence[str]
):
    """Pick per-tag thresholds that maximize F1 of the combination on out-of-fold probabilities."""
    analyses = [rules.analyze(it.text, it.speaker, it.context) for it in items]
    # The rules were written with this split in view, so on it they look better than on unseen text;
    # capping the classifier's threshold keeps it able to fire on its own (see docs/tagger.md).
    grid_p = [round(0.3 + 0.05 * i, 2) for i in range(9)]  # 0.30 .. 0.70
    grid_weak = [round(0.1 + 0.05 * i, 2) for i in range(11)]  # 0.10 .. 0.60
    grid_rule = [C.DEFAULT_RULE_ALONE, C.STRONG - 0.01, 1.01]
    thresholds: dict[str, dict[str, float]] = {}
    report: dict[str, Any] = {}
    for tag in labels:
        gold = [tag in it.labels for it in items]
        rw = [an.rules[tag].weight if tag in an.rules else 0.0 for an in analyses]
        ps = [p.get(tag, 0.0) for p in oof]
        ps_alone = [p if an.n_content >= C.MIN_WORDS_CLASSIFIER_ALONE else 0.0 for p, an in zip(ps, analyses)]
        best_key: tuple = (-1.0,)
        best_th: dict[str, float] = {}
        for r in grid_rule:
            for pt in grid_p:
                for pw in grid_weak:
                    if pw > pt:
                        continue
                    pred = [(w >= r) or (w >= C.WEAK and pa >= pw) or (pa >= pt) for w, pa in zip(rw, ps_alone)]
                    # ties: prefer the stricter setting (fewer false positives on unseen text)
                    key = (round(_f1(gold, pred), 6), pt, pw, -r)
                    if key > best_key:
                        best_key, best_th = key, {"rule": r, "p": pt, "p_weak": pw}
        cls_best = max(
            ((_f1(gold, [p >= t for p in ps_alone]), t) for t in grid_p), key=lambda x: (round(x[0], 6), x[1])
        )
        rules_f1 = _f1(gold, [w >= C.DEFAULT_RULE_ALONE for w in rw])
        th = dict(best_th)
        th["p_cls"] = cls_best[1]
        th["rule_alone"] = C.DEFAULT_RULE_ALONE
        thresholds[tag] = th
        report[tag] = {
            "cv_f1_combined": round(best_key[0], 3),
            "cv_f1_classifier": round(cls_best[0], 3),
            "f1_rules": round(rules_f1, 3),
        }
    return thresholds, report


def _f1(gold: Sequence[bool], pred: Sequence[bool]) -> float:
    tp = sum(1 for g, p in zip(gold, pred) if g and p)
    fp = sum(1 for g, p in zip(gold, pred) if p and not g)
    fn = sum(1 for g, p in zip(gold, pred) if g and not p)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _write_atomically(out: Path, nlp, meta: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        nlp.to_disk(tmp / "textcat")
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_current(rubric: Rubric, out: Path | None = None, data: Path = TRAIN_DATA) -> bool:
    """A trained model exists for this rubric and was trained on the current data."""
    out = out or model_dir(rubric.id)
    try:
        meta = json.loads((out / META).read_text())
    except (OSError, ValueError):
        return False
    return (
        (out / "textcat").is_dir()
        and meta.get("train_sha") == data_digest(Path(data))
        and meta.get("rubric_version") == rubric.version
    )


@dataclass
class Classifier:
    nlp: Any
    labels: list[str]
    thresholds: dict[str, dict[str, float]]
    meta: dict[str, Any]

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return predict(self.nlp, texts, self.labels)


def load_classifier(rubric_id: str, path: Path | None = None) -> Classifier | None:
    """The trained classifier for a rubric, or None when it has not been trained."""
    path = path or model_dir(rubric_id)
    if not (path / META).is_file():
        return None
    try:
        meta = json.loads((path / META).read_text())
        nlp = spacy.load(path / "textcat")
    except Exception as exc:  # a corrupt model dir is the user's problem to fix, not a crash
        raise ModelError(f"{path}: cannot load the tagger classifier ({exc}); run `copilot tagger train`") from None
    return Classifier(nlp=nlp, labels=list(meta["labels"]), thresholds=meta.get("thresholds", {}), meta=meta)

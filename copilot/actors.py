"""Who acted: the one way to name an actor, and the one rule for whether it is a person.

Actors (a tag's `source`, an update's or a note's `by`) are written `human:<name>`, `rules`, or
`llm:<model>`. Logs written before that rule name people bare (`by="alice"`): anything that is
not a machine name is a person, so those keep reading as humans. `web/common.js` mirrors these
functions (`isHuman`, `canonicalActor`, `actorName`); `tests/data/fold_cases.json` holds the
cases both must agree on.

Imports nothing from the package: every layer may use it.
"""

from __future__ import annotations

HUMAN = "human:"
RULES = "rules"
LLM = "llm"
# Calibration's rater ids for the copilot's taggers (`copilot:rules`, `copilot:llm`).
COPILOT = "copilot:"


def is_machine(actor: str) -> bool:
    """A tagger (`rules`, `rules:*`, `llm`, `llm:*`, `copilot:*`), or nobody named."""
    if not actor:
        return True
    if actor.startswith(HUMAN):
        return False
    return actor in (RULES, LLM) or actor.startswith((RULES + ":", LLM + ":", COPILOT))


def is_human(actor: str) -> bool:
    """A person: `human:<name>`, or a bare name from an older log."""
    return not is_machine(actor)


def human(name: str) -> str:
    """The actor id of a person (`alice` or `human:alice` -> `human:alice`)."""
    return HUMAN + name.removeprefix(HUMAN)


def canonical(actor: str) -> str:
    """The actor as written today: a bare (old-log) name becomes `human:<name>`."""
    return human(actor) if is_human(actor) else actor


def display_name(actor: str) -> str:
    """How a page or an export names the actor: a person's plain name, else the actor id."""
    return actor.removeprefix(HUMAN) if is_human(actor) else actor


def group(actor: str) -> str:
    """The filter group an actor belongs to: `rules`, `llm`, or `human:<name>` (else the actor)."""
    if is_human(actor):
        return canonical(actor)
    if actor in (LLM, COPILOT + LLM) or actor.startswith(LLM + ":"):
        return LLM
    if not actor or actor in (RULES, COPILOT + RULES) or actor.startswith(RULES + ":"):
        return RULES
    return actor


def rater(actor: str) -> str:
    """The calibration rater an actor speaks for: `human:<name>`, `copilot:rules`, `copilot:llm`."""
    g = group(actor)
    return g if g.startswith((HUMAN, COPILOT)) else COPILOT + g

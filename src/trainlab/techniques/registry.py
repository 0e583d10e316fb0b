"""The technique registry: a name in a recipe's `techniques:` list → its builder and facts.

An entry's builder is called as `builder(params)` and returns a `Technique`; a
`Technique` subclass taking its params is registered as its own builder. Each
technique states its facts once, as keywords of its `TECHNIQUES.register(...)` call,
validated here into a `TechniqueFacts`:

- `tasks`: the task kinds it trains (`tasks.TASK_KINDS`; default every kind);
- `modalities`: the inputs it works on (`tasks.MODALITIES`; default every modality);
- `conflicts`: techniques it cannot share a run with — declared on one side only, the
  registry makes the relation symmetric;
- `hint`: what to use instead where it does not apply (ends every refusal);
- `augmentation`: a data augmentation (data/augment.py).

Its pipeline slot (`order`, one of `engine.order.Slot`) and whether it rewrites targets
are read from the class. The recipe validator (`check_combination`), the doctor and the
conformance tests (`check_applicable`) read these facts, never their own tables.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from trainlab.engine.technique import Technique
from trainlab.registry import NoParams, Registry
from trainlab.tasks import MODALITIES, TASK_KINDS


@dataclass(frozen=True)
class TechniqueFacts:
    """What one technique needs and how it combines, as its register call declares."""

    tasks: frozenset[str] = frozenset(TASK_KINDS)
    modalities: frozenset[str] = frozenset(MODALITIES)
    conflicts: frozenset[str] = frozenset()  # symmetric: both sides list each other
    rewrites_targets: bool = False
    #: The class's `order` (a `Slot`); None for a builder function, whose object decides.
    slot: int | None = None
    augmentation: bool = False
    hint: str = ""


_KEYWORDS = ("tasks", "modalities", "conflicts", "rewrites_targets", "augmentation", "hint")


def _as_names(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _names(
    value: str | Iterable[str], allowed: tuple[str, ...], what: str, name: str
) -> frozenset[str]:
    names = frozenset(_as_names(value))
    unknown = sorted(names - set(allowed))
    if unknown or not names:
        raise ValueError(
            f"technique '{name}': {what} {unknown or '(none)'} not among {', '.join(allowed)}"
        )
    return names


def _declared_facts(name: str, builder: Any, metadata: dict[str, Any]) -> TechniqueFacts:
    """The facts a register call states (conflicts one-sided), checked against the class."""
    unknown = sorted(set(metadata) - set(_KEYWORDS))
    if unknown:
        raise ValueError(
            f"technique '{name}': unknown fact {unknown}; facts are {', '.join(_KEYWORDS)}"
        )
    facts = TechniqueFacts(
        tasks=_names(metadata.get("tasks", TASK_KINDS), TASK_KINDS, "tasks", name),
        modalities=_names(metadata.get("modalities", MODALITIES), MODALITIES, "modalities", name),
        conflicts=frozenset(_as_names(metadata.get("conflicts", ()))),
        rewrites_targets=bool(metadata.get("rewrites_targets", False)),
        augmentation=bool(metadata.get("augmentation", False)),
        hint=str(metadata.get("hint", "")),
    )
    if name in facts.conflicts:
        raise ValueError(f"technique '{name}' declares a conflict with itself")
    if isinstance(builder, type) and issubclass(builder, Technique):
        if "rewrites_targets" in metadata and facts.rewrites_targets != builder.rewrites_targets:
            raise ValueError(
                f"technique '{name}': rewrites_targets={facts.rewrites_targets} but "
                f"{builder.__name__}.rewrites_targets is {builder.rewrites_targets}"
            )
        facts = replace(facts, rewrites_targets=builder.rewrites_targets, slot=builder.order)
    return facts


class TechniqueRegistry(Registry):
    """A `Registry` whose entries carry validated, symmetric `TechniqueFacts`.

    `entry.metadata["facts"]` holds them; `entry.metadata["conflicts"]` (the sorted
    names) is kept for generic listings such as `trainlab techniques`.
    """

    def __init__(self) -> None:
        super().__init__("technique")
        self._declared: dict[str, TechniqueFacts] = {}

    def add(
        self,
        name: str,
        builder: Any,
        *,
        description: str,
        params: type[BaseModel] = NoParams,
        **metadata: Any,
    ) -> None:
        """Register `builder` under `name` with the facts given as keywords."""
        facts = _declared_facts(name, builder, metadata)
        super().add(name, builder, description=description, params=params)
        self._declared[name] = facts
        self._make_symmetric()

    def remove(self, name: str) -> None:
        """Unregister `name` and its side of every conflict."""
        super().remove(name)
        self._declared.pop(name, None)
        self._make_symmetric()

    def facts(self, name: str) -> TechniqueFacts:
        """The facts of technique `name` (RecipeError with did-you-mean if unknown)."""
        return self.get(name).metadata["facts"]

    def _make_symmetric(self) -> None:
        for name, facts in self._declared.items():
            others = {o for o, f in self._declared.items() if name in f.conflicts}
            full = replace(facts, conflicts=facts.conflicts | others)
            self._entries[name].metadata.update(facts=full, conflicts=sorted(full.conflicts))


TECHNIQUES: TechniqueRegistry = TechniqueRegistry()


def _either(values: Collection[str], canonical: tuple[str, ...]) -> str:
    return " or ".join(v for v in canonical if v in values)


def check_applicable(name: str, task_kind: str, modality: str) -> str | None:
    """Why technique `name` does not apply to a `task_kind` task on `modality` inputs.

    None when it applies. `modality` is `tasks.modality(info)` of the task.
    """
    facts = TECHNIQUES.facts(name)
    if modality not in facts.modalities:
        reason = f"{name} works on {_either(facts.modalities, MODALITIES)} inputs, not {modality}"
    elif task_kind not in facts.tasks:
        reason = f"{name} needs a {_either(facts.tasks, TASK_KINDS)} task, not {task_kind}"
    else:
        return None
    return f"{reason}; {facts.hint}" if facts.hint else reason


def check_combination(names: list[str], alternating: Collection[str] = ()) -> str | None:
    """Why the techniques `names` cannot share one run, or None.

    Declared conflicts (either side), and two or more target rewriters unless every one
    of them is in `alternating` (they set `alternate: true` and take turns).
    """
    for i, name in enumerate(names):
        for other in names[i + 1 :]:
            if other in TECHNIQUES.facts(name).conflicts:
                return f"'{name}' conflicts with '{other}'; keep one"
    rewriting = [n for n in names if TECHNIQUES.facts(n).rewrites_targets]
    if len(rewriting) > 1 and not all(n in alternating for n in rewriting):
        return (
            f"{' and '.join(rewriting)} both rewrite the targets and cannot be combined in "
            "one run; keep one, or set alternate: true on each to take turns batch by batch"
        )
    return None

"""The kinds the gateway serves. Adding a kind is a module in this package and one line in ``KINDS``."""

from __future__ import annotations

from typing import Any

from shared.config.targets import TargetEntry
from shared.errors import NotFound
from shared.kinds.base import RunKind
from shared.kinds.datafactory import DATAFACTORY
from shared.kinds.fabric import FABRIC
from shared.kinds.machinelearning import MACHINE_LEARNING
from shared.kinds.spark import SPARK
from shared.kinds.synapse import SYNAPSE

KINDS: tuple[RunKind[Any, Any], ...] = (DATAFACTORY, SYNAPSE, SPARK, MACHINE_LEARNING, FABRIC)

_BY_NAME = {kind.name: kind for kind in KINDS}
# The catalog's entry models, once each (Synapse pipelines and Spark share the Synapse entry).
TARGET_MODELS: tuple[type[TargetEntry], ...] = tuple(dict.fromkeys(kind.target_model for kind in KINDS))
TARGET_KINDS = frozenset(kind.target_kind for kind in KINDS)
RUN_KINDS = tuple(_BY_NAME)


def kind_named(name: str) -> RunKind[Any, Any]:
    """The kind a run record names (records only ever hold registered kinds' names)."""
    return _BY_NAME[name]


def studio_of(name: str) -> str:
    """The monitoring UI a kind's links open, by the kind's name (alerts carry the name)."""
    kind = _BY_NAME.get(name)
    return kind.studio if kind else "the Studio"


def label_of(name: str) -> str:
    """How alerts name a kind ("ADF", "Azure ML"), by the kind's name."""
    kind = _BY_NAME.get(name)
    return kind.label if kind else name


def step_noun_of(name: str) -> str:
    """What a kind calls the part of a run that failed ("activity", "step"), by the kind's name."""
    kind = _BY_NAME.get(name)
    return kind.step_noun if kind else "activity"


def kinds_of(target: TargetEntry) -> list[RunKind[Any, Any]]:
    """Every kind that works on ``target``: a Synapse workspace runs pipelines and Spark batches."""
    return [kind for kind in KINDS if kind.target_kind == target.kind]


def kind_for(family: str, target: TargetEntry) -> RunKind[Any, Any]:
    """The kind a start on ``/targets/{target}/{family}/...`` goes to."""
    for kind in kinds_of(target):
        if kind.family == family:
            return kind
    raise NotFound(f"Target {target.name!r} is a {target.kind} target; it has no {family}.")

"""The tree keeps its shape: what differs between kinds of target lives in ``shared/kinds`` only.

The service, the poller, the alerts, the views and the CLI ask a kind's adapter; a branch on a kind
anywhere else is how the old spread came back, so it fails here with the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from shared.kinds.registry import KINDS, RUN_KINDS, TARGET_KINDS, TARGET_MODELS

SHARED = Path(__file__).resolve().parents[2] / "shared"
KIND_NAMES = frozenset(RUN_KINDS) | TARGET_KINDS
TARGET_CLASSES = frozenset(model.__name__ for model in TARGET_MODELS)


def _outside_kinds() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SHARED.rglob("*.py")):
        if SHARED / "kinds" not in path.parents:
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(SHARED.parent)}:{getattr(node, 'lineno', '?')}"


def test_no_module_outside_the_kinds_package_names_a_kind() -> None:
    found = [
        f"{_where(path, node)} {node.value!r}"
        for path, tree in _outside_kinds()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in KIND_NAMES
    ]
    assert found == [], "compare or look up kinds through shared.kinds, not by name: " + ", ".join(found)


def test_no_module_outside_the_kinds_package_checks_a_target_class() -> None:
    found = []
    for path, tree in _outside_kinds():
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute) and (
                (node.id if isinstance(node, ast.Name) else node.attr) in TARGET_CLASSES
            ):
                found.append(_where(path, node))
            if isinstance(node, ast.ImportFrom) and any(alias.name in TARGET_CLASSES for alias in node.names):
                found.append(_where(path, node))
    assert found == [], "ask the target's kind (shared.kinds) instead of its class: " + ", ".join(found)


def test_every_kind_is_complete_and_named_once() -> None:
    assert len({kind.name for kind in KINDS}) == len(KINDS)
    for kind in KINDS:
        assert kind.target_model.model_fields["kind"].annotation is not str, f"{kind.name}: entry needs a Literal kind"
        assert kind.family and kind.rules_field and kind.label and kind.studio, kind.name
        assert not getattr(kind, "__abstractmethods__", None), f"{kind.name} leaves {kind.__abstractmethods__} open"


def test_package_inits_are_docstrings_only_to_keep_the_cold_start_light() -> None:
    heavy = []
    for init in sorted(SHARED.rglob("__init__.py")):
        body = ast.parse(init.read_text(encoding="utf-8")).body
        if not (len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
            heavy.append(str(init.relative_to(SHARED.parent)))
    assert heavy == [], "an __init__ that imports makes every import of its package pay: " + ", ".join(heavy)

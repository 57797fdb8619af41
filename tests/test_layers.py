"""The import graph of the bot's packages keeps its layers: database -> market -> alerts -> bot, no arrow back up, the
test peers (``testing``, ``tests``) never imported by the bot, and no import circle among its modules.

The graph is read statically: every module under market/, alerts/ and bot/ is parsed with ``ast`` and every
import in it counts, at module level or inside a function. Only imports under ``if TYPE_CHECKING:`` are left
out of the circle check, since they never run (they still count for the layers).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest first: a module may import its own layer and the layers before it, never one after it.
LAYERS = ("database", "market", "alerts", "bot")
PEERS = ("testing", "tests")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for layer in LAYERS for path in sorted((ROOT / layer).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_in(tree: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports_in(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _imports_in(ast.Module(body=[child], type_ignores=[]), type_only)
        else:
            yield from _imports_in(node, type_only)


def imports_of(name: str, source: str, known: set[str], *, is_package: bool = False) -> Iterator[Import]:
    """What module ``name`` imports, each resolved to the most specific module it names."""
    package = name if is_package else name.rpartition(".")[0]
    for node, type_only in _imports_in(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from bot import core`` imports the module bot.core; ``from bot.core import Answer`` imports bot.core.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        for target in targets:
            yield Import(name, target, node.lineno, type_only)


def graph() -> list[Import]:
    found = modules()
    known = set(found)
    return [
        edge
        for name, path in found.items()
        for edge in imports_of(
            name, path.read_text(encoding="utf-8"), known, is_package=path.name == "__init__.py"
        )
    ]


def top(name: str) -> str:
    return name.partition(".")[0]


def cycles(edges: list[Import], known: set[str]) -> list[list[str]]:
    """The import circles among ``known`` modules: each strongly connected component of more than one
    module (Tarjan), as a sorted list of module names."""
    following: dict[str, set[str]] = {name: set() for name in known}
    for edge in edges:
        if not edge.type_only and edge.imported in known and edge.imported != edge.importer:
            following[edge.importer].add(edge.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for other in sorted(following[name]):
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in on_stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(known):
        if name not in index:
            visit(name)
    return sorted(found)


def arrows_up(edges: list[Import]) -> list[str]:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    return [
        f"{edge.importer} (line {edge.line}) imports {edge.imported}"
        for edge in edges
        if top(edge.imported) in rank and rank[top(edge.imported)] > rank[top(edge.importer)]
    ]


def test_the_walk_counts_imports_in_functions_and_leaves_type_only_ones_out_of_circles() -> None:
    """The walk itself, on a small module: relative and function-level imports resolve to the modules they
    name, an import under TYPE_CHECKING is marked, and a circle of three modules is found as one."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import core\n"
        "from .core import Answer\n"
        "if TYPE_CHECKING:\n"
        "    from bot.app import Application\n"
        "def register():\n"
        "    import bot.handlers\n"
        "    from market import cache\n"
    )
    known = {"bot", "bot.app", "bot.handlers", "bot.commands", "bot.commands.core", "market", "market.cache"}
    found = {(e.imported, e.type_only) for e in imports_of("bot.commands.alerts", source, known)}
    assert found == {
        ("typing", False),
        ("bot.commands.core", False),
        ("bot.app", True),
        ("bot.handlers", False),
        ("market.cache", False),
    }
    loop = [Import("a", "b", 1, False), Import("b", "c", 1, False), Import("c", "a", 1, False)]
    assert cycles([*loop, Import("c", "d", 1, False)], {"a", "b", "c", "d"}) == [["a", "b", "c"]]
    assert cycles([*loop[:2], Import("c", "a", 1, True)], {"a", "b", "c"}) == []
    assert {"market", "alerts", "bot", "bot.cli"} <= set(modules())


def test_market_imports_nothing_from_alerts_or_bot() -> None:
    offending = [line for line in arrows_up(graph()) if line.startswith("market")]
    assert offending == [], "\n".join(offending)


def test_alerts_imports_nothing_from_bot() -> None:
    offending = [line for line in arrows_up(graph()) if line.startswith("alerts")]
    assert offending == [], "\n".join(offending)


def test_the_bot_never_imports_the_test_peers() -> None:
    offending = [
        f"{e.importer} (line {e.line}) imports {e.imported}" for e in graph() if top(e.imported) in PEERS
    ]
    assert offending == [], "\n".join(offending)


def circles_within(layer: str) -> list[list[str]]:
    # The layer checks above already forbid a circle that crosses layers, so each layer is checked alone.
    return [c for c in cycles(graph(), set(modules())) if top(c[0]) == layer]


@pytest.mark.parametrize("layer", ["market", "alerts"])
def test_no_module_of_market_or_alerts_imports_itself_through_a_circle(layer: str) -> None:
    found = circles_within(layer)
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_module_of_bot_imports_itself_through_a_circle() -> None:
    found = circles_within("bot")
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)

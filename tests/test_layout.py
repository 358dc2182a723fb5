"""The house: no import circle (imports inside functions and under TYPE_CHECKING counted), no
module over 400 lines and no function over 60 in src/colorgan, so each journey reads in one pass."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "colorgan"
MODULES = {".".join(p.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__"): p
           for p in PACKAGE.rglob("*.py") if "assets" not in p.parts}


def _imports(module: str, path: Path) -> set[str]:
    """The colorgan modules ``module`` imports, anywhere in its file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join(module.split(".")[: len(module.split(".")) - node.level] + [node.module])
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in MODULES:  # `from colorgan.x import y`: y a submodule, or a name in x
                name = name.rpartition(".")[0]
            if name and name != module and name != "colorgan":
                found.add(name)
    return found


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph = {module: _imports(module, path) for module, path in MODULES.items()}
    assert "colorgan.colorize.plan" in graph["colorgan.colorize.job"]  # the reader sees the edges it should
    assert _circle(graph) is None, " -> ".join(_circle(graph) or [])


def test_the_checker_finds_a_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_short(module):
    text = MODULES[module].read_text()
    assert text.count("\n") <= 400, f"{module} has {text.count(chr(10))} lines"
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, f"{module}: functions over 60 lines: {long}"

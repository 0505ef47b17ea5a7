"""The package's public surface and its house rules: a lazy ``funk_perception`` root, no imports from the root
inside the package, no ``_private`` names reached across modules, no import cycles between modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import funk_perception

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("funk_perception", "funk_grasp", "funk_rl")
TREES = (*PACKAGES, "scripts", "benchmarks", "launch")


def _sources(trees: tuple[str, ...] = TREES) -> list[Path]:
    return sorted(p for tree in trees for p in (ROOT / tree).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_public_names_resolve_to_their_defining_module() -> None:
    for name in funk_perception.__all__:
        value = getattr(funk_perception, name)
        assert value is getattr(__import__(funk_perception._PUBLIC[name], fromlist=[name]), name)
    assert funk_perception.FunctionalKeypointDetector.__module__ == "funk_perception.detector"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        funk_perception.nope  # noqa: B018


def test_import_of_the_root_and_tasks_stays_free_of_torch() -> None:
    code = "import sys, funk_perception, funk_perception.tasks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_package_modules_never_import_from_the_package_root() -> None:
    offenders = []
    for path in _sources(PACKAGES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in PACKAGES and node.level == 0:
                names = [a.name for a in node.names]
                # "from funk_perception import tasks" names a submodule, not a re-exported value
                if any(
                    not (ROOT / node.module / n).with_suffix(".py").exists() and not (ROOT / node.module / n).is_dir()
                    for n in names
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def _private_definitions() -> set[str]:
    names = set()
    for path in _sources(PACKAGES):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.name.startswith("_")
                and not node.name.startswith("__")
            ):
                names.add(node.name)
    return names


def _own(value: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: the object's own private names."""
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"


def test_no_private_name_is_reached_from_another_module() -> None:
    private = _private_definitions()
    offenders = []
    for path in _sources((*TREES, "tests")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
            # obj._method(...) on anything but self, cls or super(), for the private names funk defines
            if isinstance(node, ast.Attribute) and node.attr in private and not _own(node.value):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} reaches .{node.attr}")
    assert offenders == []


def _imports(path: Path) -> set[str]:
    """Every funk module ``path`` imports, function-local imports included."""
    found = set()
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def test_no_import_cycles_between_modules() -> None:
    modules = {_module_name(p): p for p in _sources(PACKAGES)}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # a package's __init__ that its submodules import by being inside it is not an edge of the code's design
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize("name", ["report", "ablation", "fewshot", "classify"])
def test_research_commands_that_moved_say_where(name: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", f"funk_perception.{name}", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 2
    assert f"python scripts/{name}.py --help" in out.stderr
    assert (ROOT / "scripts" / f"{name}.py").is_file()

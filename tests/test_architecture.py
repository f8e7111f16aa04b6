"""The shape of the code, checked from its own imports (read as text, nothing run): services
never import a tasks module, no two modules import each other in a loop, and only the
job actions move a job's status."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ecolink", "worker")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports anywhere in its file, functions included (a lazy
    import is still an import), resolved to modules rather than the names they hold."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_walk_sees_the_project():
    # Guards the guards below: an empty or broken walk would pass them all.
    assert "ecolink.finetune.actions" in GRAPH
    assert "ecolink.finetune.lifecycle" in GRAPH["ecolink.finetune.actions"]
    assert "worker.trainer.config" in GRAPH["ecolink.finetune.actions"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_under_ecolink_imports_a_tasks_module():
    offenders = {
        name: sorted(t for t in targets if t.rpartition(".")[2] == "tasks")
        for name, targets in GRAPH.items()
        if name.startswith("ecolink")
    }
    assert {name: t for name, t in offenders.items() if t} == {}


def test_no_import_cycle_among_the_projects_modules():
    assert _cycles(GRAPH) == []


def test_only_the_actions_module_moves_a_jobs_status():
    """`lifecycle.transition` is the one conditional update of `Job.status`; only the
    actions call it, and nothing else writes the status column."""
    allowed = {ROOT / "ecolink/finetune/actions.py", ROOT / "ecolink/finetune/lifecycle.py"}
    calls, writes = [], []
    for path in MODULES.values():
        text = path.read_text()
        if path not in allowed and re.search(r"\btransition\(", text):
            calls.append(str(path.relative_to(ROOT)))
        if path not in allowed and re.search(r"Job\.objects\.[^\n]*\.update\([^)]*\bstatus=", text):
            writes.append(str(path.relative_to(ROOT)))
    assert calls == []
    assert writes == []


def test_the_readme_links_the_architecture_page_and_every_file_it_names_exists():
    """docs/architecture.md is the map a newcomer reads: it must be linked, and every
    module and task it names must still be there."""
    assert "](docs/architecture.md)" in (ROOT / "README.md").read_text()
    page = (ROOT / "docs/architecture.md").read_text()
    named = set(re.findall(r"`((?:ecolink|worker)/[\w/]+\.py)`", page))
    assert named, "the page names no files: the check below would be empty"
    assert sorted(p for p in named if not (ROOT / p).exists()) == []
    tasks = set(re.findall(r"^\| `([a-z]+\.[a-z_]+)` \|", page, flags=re.M))
    defined = set()
    for path in MODULES.values():
        defined.update(re.findall(r'shared_task\(name="([a-z]+\.[a-z_]+)"', path.read_text()))
    assert tasks == defined

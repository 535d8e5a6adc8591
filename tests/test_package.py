"""The package's structure: no module of hybridunet takes part in an import cycle."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hybridunet"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at the top or inside functions; importing
    `a.b.c` imports the packages `a` and `a.b` too (their __init__ runs)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                edges |= {m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in modules}
        # a package's own __init__ runs before its modules: an edge to it is no cycle unless
        # the module imports a name defined there (checked below through `from pkg import name`)
        graph[name] = {m for m in edges if m != name and not name.startswith(m + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_takes_part_in_an_import_cycle():
    graph = import_graph()
    assert {"hybridunet.prediction", "hybridunet.engine"} <= set(graph)
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check finds one


def test_no_module_imports_a_name_from_its_own_package_init():
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module != "hybridunet" \
                    and name.startswith(node.module + "."):
                package = PACKAGE.parent.joinpath(*node.module.split("."))
                names = [a.name for a in node.names]
                assert all((package / f"{n}.py").exists() or (package / n).is_dir() for n in names), (name, names)

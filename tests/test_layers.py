"""The layers of `infra/` and `modal_app/`, held by walking every module's imports (its AST).

From the bottom up (docs/architecture.md):

    modal_app.contract   stdlib only; the one module of the app that infra may import
    infra.core           no pulumi, no cloud SDK; imports only itself and the contract
    infra.policies       the checklist; imports only the core
    infra.modal_hook     dynamic resources on the modal SDK; the core below it
    infra.stages.*       one package per stage; never another stage
    infra.program        wiring: config -> stages
    infra.policy_pack    the pulumi-policy adapter of infra.policies
    infra.tools          operator commands; nothing outside tools imports them

An import that reaches up (or sideways between stages), and any import cycle among these modules,
fails here, naming the module and the line. Imports inside functions count: a lazy import is still
a dependency. `modal_app` never imports `infra`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("infra", "modal_app")

# What each layer may import from this project (beyond itself). Checked in order: first match wins.
ALLOWED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("modal_app.contract", ()),
    ("modal_app", ("modal_app",)),
    ("infra.core", ("infra.core", "modal_app.contract")),
    ("infra.policies", ("infra.policies", "infra.core")),
    ("infra.modal_hook", ("infra.modal_hook", "infra.core", "modal_app.contract")),
    ("infra.stages", ("infra.modal_hook", "infra.core", "modal_app.contract")),
    ("infra.program", ("infra.stages", "infra.core", "modal_app.contract")),
    ("infra.policy_pack", ("infra.policy_pack", "infra.policies", "infra.core")),
    ("infra.tools", ("infra", "modal_app.contract")),
    ("infra.__main__", ("infra.tools",)),
    ("infra", ()),
)
# Third-party packages the pure layers must never import, even lazily.
FORBIDDEN_THIRD_PARTY = {
    "modal_app.contract": ("pulumi", "pulumi_aws", "pulumi_github", "modal", "boto3", "numpy"),
    "infra.core": ("pulumi", "pulumi_aws", "pulumi_github", "pulumi_policy", "modal", "boto3"),
    "infra.policies": ("pulumi", "pulumi_aws", "pulumi_github", "pulumi_policy", "modal", "boto3"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_of(path: Path, name: str, known: Iterable[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, resolved to a module of `known`
    where one matches (`from infra.core import names` is infra.core.names)."""
    known = set(known)
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in known else base, node.lineno))
    return found


def layer_of(module: str) -> str:
    for layer, _ in ALLOWED:
        if module == layer or module.startswith(layer + "."):
            return layer
    raise AssertionError(f"{module} belongs to no layer: add it to ALLOWED")


def within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(graph: Mapping[str, list[tuple[str, int]]]) -> list[str]:
    """Every import that leaves its layer's allowance, and every cycle."""
    allowed = dict(ALLOWED)
    found = []
    for module, imported in sorted(graph.items()):
        layer = layer_of(module)
        own = (layer,) if layer not in ("infra", "infra.__main__") else (module,)
        for target, line in imported:
            top = target.split(".")[0]
            forbidden = FORBIDDEN_THIRD_PARTY.get(layer, ())
            if top in forbidden:
                found.append(f"{module}:{line} imports {target}, which layer {layer} never may")
            if top not in PACKAGES:
                continue
            if layer.startswith("infra.stages") or layer == "infra.stages":
                stage = ".".join(module.split(".")[:3])
                if within(target, ("infra.stages",)) and not within(target, (stage,)):
                    found.append(f"{module}:{line} imports {target}: stages never import another")
                    continue
                if within(target, (stage,)):
                    continue
            if within(target, own) or within(target, allowed[layer]):
                continue
            found.append(f"{module}:{line} imports {target}, above or beside layer {layer}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: Mapping[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Cycles among the project's modules (each reported once, from its smallest member)."""
    edges = {
        m: sorted({t for t, _ in targets if t in graph and t != m}) for m, targets in graph.items()
    }
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def visit(node: str, path: list[str], on_path: set[str]) -> None:
        for nxt in edges.get(node, []):
            if nxt in on_path:
                cycle = path[path.index(nxt) :]
                start = cycle.index(min(cycle))
                key = tuple(cycle[start:] + cycle[:start])
                if key not in seen:
                    seen.add(key)
                    found.append([*key, key[0]])
                continue
            if len(path) < 40:
                visit(nxt, [*path, nxt], on_path | {nxt})

    for module in sorted(edges):
        visit(module, [module], {module})
    return found


def project_graph() -> dict[str, list[tuple[str, int]]]:
    modules = project_modules()
    # A package imported for a submodule (`from infra.core import names`) resolves to the module.
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def test_no_module_imports_above_its_layer_and_there_is_no_cycle() -> None:
    assert violations(project_graph()) == []


def test_the_program_never_imports_a_tool_and_infra_reads_only_the_contract_of_the_app() -> None:
    graph = project_graph()
    program_side = [m for m in graph if m.startswith("infra") and not within(m, ("infra.tools",))]
    reaching_tools = [
        f"{m}:{line} -> {t}"
        for m in program_side
        for t, line in graph[m]
        if within(t, ("infra.tools",)) and m != "infra.__main__"
    ]
    assert reaching_tools == []
    app_imports = sorted(
        {
            t
            for m in graph
            if m.startswith("infra")
            for t, _ in graph[m]
            if t.startswith("modal_app")
        }
    )
    assert app_imports == ["modal_app.contract"]


@pytest.mark.parametrize(
    ("module", "imports", "expected"),
    [
        ("infra.core.config", [("infra.stages.aws.iam", 3)], "above or beside layer infra.core"),
        ("infra.core.config", [("pulumi", 9)], "never may"),
        ("infra.policies.model", [("infra.tools.plan", 5)], "above or beside"),
        (
            "infra.stages.aws.component",
            [("infra.stages.github.ruleset", 2)],
            "never import another",
        ),
        ("infra.modal_hook.secret", [("infra.stages.modal.component", 4)], "above or beside"),
        ("modal_app.jobs", [("infra.core.names", 1)], "above or beside"),
        ("modal_app.contract", [("modal_app.settings", 1)], "above or beside"),
    ],
)
def test_the_checker_catches_an_upward_import(module, imports, expected) -> None:
    target = imports[0][0]
    graph = {module: imports, **({target: []} if target.split(".")[0] in PACKAGES else {})}
    assert any(expected in v for v in violations(graph)), violations(graph)


def test_the_checker_catches_a_cycle() -> None:
    graph = {
        "infra.tools.a": [("infra.tools.b", 1)],
        "infra.tools.b": [("infra.tools.c", 1)],
        "infra.tools.c": [("infra.tools.a", 1)],
    }
    assert violations(graph) == [
        "import cycle: infra.tools.a -> infra.tools.b -> infra.tools.c -> infra.tools.a"
    ]

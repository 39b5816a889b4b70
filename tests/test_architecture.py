"""The layers of docs/architecture.md, enforced: no import (module level or lazy, inside a function) may
cross a forbidden arrow.

core (harmscan/*.py)  <-  runtime (classifiers/)  <-  serving (serving/)
                      <-  training (training/)    <-> eval (eval/)   (both may import runtime and core)
The fronts (harmscan/cli.py, harmscan/quickstart.py) may import every layer.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# folder -> (import name, layer); pyproject.toml's package-dir maps the same folders.
FOLDERS = {
    "harmscan": ("harmscan", "core"),
    "classifiers": ("harmscan.classifiers", "runtime"),
    "training": ("harmscan.training", "training"),
    "eval": ("harmscan.eval", "eval"),
    "serving": ("harmscan.serving", "serving"),
}
FRONTS = {"harmscan.cli", "harmscan.quickstart"}
LAYERS = ("core", "runtime", "training", "eval", "serving")
FORBIDDEN: dict[str, set[str]] = {
    "core": {"runtime", "training", "eval", "serving"},
    "runtime": {"training", "eval", "serving"},
    "serving": {"training", "eval"},
    "eval": {"serving"},
    "training": {"serving"},
}

# Known arrows that cross a forbidden line today, each (importer, imported module) exactly, so that no new
# one can appear unnoticed. Remove an entry when its import goes; the test fails on a stale entry too.
ALLOWED: dict[tuple[str, str], str] = {
    # The public facade `from harmscan import HarmClassifier`, resolved lazily in __getattr__ so that
    # `import harmscan` (and so harmscan.errors, harmscan.labels) never loads the runtime.
    ("harmscan", "harmscan.classifiers"): "public re-export",
}
# training <-> eval is allowed as a layer arrow, but only through these known imports (issue 19, step 5:
# the behavioural suite becomes one package that both import, and these go).
TRAINING_EVAL: set[tuple[str, str]] = {
    ("harmscan.training.dataset", "harmscan.eval.suite.cases"),
    ("harmscan.training.dataset", "harmscan.eval.obfuscate"),
    ("harmscan.training.recipe", "harmscan.eval.thresholds"),
    ("harmscan.eval.identity_audit", "harmscan.training.sources"),
    ("harmscan.eval.cli", "harmscan.training.datadir"),
    ("harmscan.eval.external", "harmscan.training.dataset"),
    ("harmscan.eval.external", "harmscan.training.datadir"),
    ("harmscan.eval.external", "harmscan.training.recipe"),
    ("harmscan.eval.external", "harmscan.training.sources"),
    ("harmscan.eval.evaluate", "harmscan.training.datadir"),
    ("harmscan.eval.evaluate", "harmscan.training.recipe"),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO)
    parts = list(rel.with_suffix("").parts)
    package = FOLDERS[parts[0]][0]
    rest = parts[1:] if parts[-1] != "__init__" else parts[1:-1]
    return ".".join([package, *rest])


def layer_of(module: str) -> str:
    if module in FRONTS:
        return "front"
    for package, layer in sorted(FOLDERS.values(), key=lambda pl: -len(pl[0])):
        if module == package or module.startswith(package + "."):
            return layer
    raise ValueError(f"{module} is outside the package")


def package_modules() -> dict[str, Path]:
    found = {module_name(p): p for folder in FOLDERS for p in sorted((REPO / folder).rglob("*.py"))}
    return found


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a harmscan module, at any depth of the tree."""
    is_package = path.name == "__init__.py"
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            # `from harmscan.x import y` may import the submodule harmscan.x.y: judge the deepest real module.
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((node.lineno, sub if sub in _MODULES else target))
    return [(line, name) for line, name in out if name == "harmscan" or name.startswith("harmscan.")]


_MODULES = package_modules()


def test_every_module_is_mapped_to_a_layer() -> None:
    # The folders here are exactly the packages pyproject.toml ships (a new top-level folder needs a layer).
    tomllib = pytest.importorskip("tomllib")
    package_dir = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert {folder.split("/")[0] for folder in package_dir.values()} == set(FOLDERS)
    counts = {layer: 0 for layer in (*LAYERS, "front")}
    for module in _MODULES:
        counts[layer_of(module)] += 1
    # Counted independently of package_modules(): every .py file below the five folders is checked.
    files = sum(name.endswith(".py") for folder in FOLDERS for _, _, names in os.walk(REPO / folder) for name in names)
    assert len(_MODULES) == files, "two files map to one module name, or a file was missed"
    assert files >= 70, f"only {files} modules found under {', '.join(FOLDERS)}: the scan lost a folder"
    assert counts["front"] == len(FRONTS)
    # Each layer holds real modules beyond its __init__ (an empty layer would mean a folder was missed).
    assert all(counts[layer] >= 2 for layer in LAYERS), counts
    assert sum(counts.values()) == files


def crossings(module: str, path: Path) -> list[tuple[str, tuple[str, str], str]]:
    """(kind, (module, imported), message) for each import of `module` across a layer line: kind is
    "allowed" (in ALLOWED or TRAINING_EVAL) or "forbidden"."""
    src = layer_of(module)
    if src == "front":
        return []
    out = []
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    for line, target in imports_of(module, path):
        dst = layer_of(target)
        pair = (module, target)
        if dst == "front" or dst in FORBIDDEN[src]:
            kind = "allowed" if pair in ALLOWED else "forbidden"
            out.append((kind, pair, f"{where}:{line}: {module} imports {target} ({src} -> {dst})"))
        elif {src, dst} == {"training", "eval"}:
            kind = "allowed" if pair in TRAINING_EVAL else "forbidden"
            out.append((kind, pair, f"{where}:{line}: {module} imports {target} ({src} -> {dst}: a new "
                                    "training <-> eval import; share a module from core or runtime instead)"))
    return out


def all_crossings() -> list[tuple[str, tuple[str, str], str]]:
    return [c for module, path in sorted(_MODULES.items()) for c in crossings(module, path)]


def test_no_import_crosses_a_forbidden_arrow() -> None:
    violations = [message for kind, _, message in all_crossings() if kind == "forbidden"]
    assert not violations, "imports across forbidden layer arrows:\n" + "\n".join(violations)


def test_allow_lists_hold_no_stale_entry() -> None:
    used = {pair for kind, pair, _ in all_crossings() if kind == "allowed"}
    assert set(ALLOWED) - used == set(), "allowed but no longer imported: remove it from ALLOWED"
    assert TRAINING_EVAL - used == set(), "no longer imported: remove it from TRAINING_EVAL"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("harmscan.classifiers.bundle", "import json\n\ndef f():\n    from harmscan.training.modeling import x\n",
         ":4: harmscan.classifiers.bundle imports harmscan.training.modeling (runtime -> training)"),
        ("harmscan.serving.service", "import harmscan.eval.render_report\n",
         ":1: harmscan.serving.service imports harmscan.eval.render_report (serving -> eval)"),
        ("harmscan.labels", "from harmscan.classifiers import policy\n",
         ":1: harmscan.labels imports harmscan.classifiers.policy (core -> runtime)"),
        ("harmscan.eval.render_report", "from harmscan.serving.schemas import X\n",
         ":1: harmscan.eval.render_report imports harmscan.serving.schemas (eval -> serving)"),
        ("harmscan.eval.render_report", "from harmscan.training import trainer\n",
         ":1: harmscan.eval.render_report imports harmscan.training.trainer (eval -> training: a new"),
        ("harmscan.serving.engine", "from ..training import trainer\n",
         ":1: harmscan.serving.engine imports harmscan.training.trainer (serving -> training)"),
    ],
)
def test_a_planted_forbidden_import_is_reported(module: str, source: str, expected: str, tmp_path: Path) -> None:
    # The checker on a planted copy of a module: it names the module, the line and the arrow.
    planted = tmp_path / "planted.py"
    planted.write_text(source)
    found = [message for kind, _, message in crossings(module, planted) if kind == "forbidden"]
    assert len(found) == 1 and expected in found[0], found


def test_the_fronts_may_import_every_layer(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("from harmscan.training import trainer\nfrom harmscan.serving import service\n")
    assert crossings("harmscan.cli", planted) == []


# -- the manifest has one reader ---------------------------------------------------------------------------
# Fronts read a bundle's manifest through `harmscan.classifiers.manifest.Manifest` fields (`bundle.info`),
# which apply the defaults of older bundles once. Raw key access (`manifest["..."]`, `manifest.get(...)`)
# is left to the modules that write the document, each listed with why.
MANIFEST_WRITERS: dict[str, str] = {
    "harmscan.classifiers.manifest": "the typed reader itself",
    "harmscan.classifiers.bundle": "Bundle.update, new_manifest, record_files, mark_gates_pending",
    "harmscan.classifiers.int8_gate": "gate_record reads the operating point of a manifest being written",
    "harmscan.training.export": "builds the document of a new bundle",
}
_RAW_ACCESS = ("get", "setdefault", "pop")


def _is_manifest(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "manifest") or (
        isinstance(node, ast.Attribute) and node.attr == "manifest")


def raw_manifest_reads(path: Path) -> list[int]:
    """Lines of `manifest[...]` and `manifest.get/setdefault/pop(...)` (a local or an attribute `.manifest`)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Subscript) and _is_manifest(node.value):
            lines.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in _RAW_ACCESS and _is_manifest(node.func.value)):
            lines.append(node.lineno)
    return sorted(lines)


def test_only_the_manifest_writers_read_raw_manifest_keys() -> None:
    found = {module: raw_manifest_reads(path) for module, path in sorted(_MODULES.items())}
    offenders = [f"{_MODULES[m].relative_to(REPO)}:{line}: {m} reads a raw manifest key (use bundle.info.<field>)"
                 for m, lines in found.items() if m not in MANIFEST_WRITERS for line in lines]
    assert not offenders, "\n".join(offenders)
    assert all(found[m] for m in MANIFEST_WRITERS if m != "harmscan.classifiers.manifest"), (
        "a listed writer no longer reads raw keys: remove it from MANIFEST_WRITERS")


def test_a_planted_raw_manifest_read_is_reported(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text('"""manifest["doc"] in a docstring is fine."""\n'
                       'def f(bundle):\n    return bundle.manifest.get("window_stride", 32)\n'
                       'def g(manifest):\n    return manifest["labels"]\n')
    assert raw_manifest_reads(planted) == [3, 5]


def test_the_scan_engines_do_not_import_a_cli() -> None:
    # One driver (scan.ScanCheckpoint) serves both engines; the CLI calls the engines, never the other way round.
    engines = ("harmscan.classifiers.scan", "harmscan.classifiers.scan_progress", "harmscan.classifiers.ray_engine")
    back = [f"{m} imports {target} (line {line})" for m in engines for line, target in imports_of(m, _MODULES[m])
            if target.endswith(".cli")]
    assert not back, back
    assert "harmscan.classifiers.scan" in {t for _, t in imports_of("harmscan.classifiers.ray_engine",
                                                                      _MODULES["harmscan.classifiers.ray_engine"])}

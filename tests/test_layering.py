"""Imports point down the layers: geometry <- model <- policies / episode <- everything else."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "saccade"

# module folder or file -> saccade modules it may import
ALLOWED = {
    "_io.py": set(),
    "_checks.py": set(),
    "_schedule.py": set(),
    "geometry.py": set(),
    "hub.py": set(),
    "episode_config.py": {"saccade._checks"},
    "config_files.py": {"saccade.episode_config"},
    "glimpse.py": {"saccade._checks", "saccade.geometry"},
    "weights_file.py": {"saccade._io", "saccade.model"},
    "model": {"saccade._checks", "saccade._io", "saccade.geometry", "saccade.model"},
    "policies": {"saccade.geometry", "saccade.policies", "saccade.model", "saccade.weights_file"},
    "stream.py": {"saccade._checks", "saccade.episode", "saccade.geometry", "saccade.glimpse", "saccade.model"},
    "export": {"saccade._checks", "saccade.export", "saccade.geometry", "saccade.model"},
}
THIRD_PARTY_IN_MODEL = {"torch", "safetensors", "__future__", "math", "json", "os", "re", "dataclasses"}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_layers_import_only_downwards():
    violations = []
    for scope, allowed in ALLOWED.items():
        files = [PACKAGE / scope] if scope.endswith(".py") else sorted((PACKAGE / scope).glob("*.py"))
        for file in files:
            for name in imports_of(file):
                if name.startswith("saccade") and not any(name == a or name.startswith(a + ".") for a in allowed):
                    violations.append(f"{file.relative_to(PACKAGE)} imports {name}")
    assert not violations, violations


def test_model_needs_only_torch_and_safetensors():
    stdlib_ok = {"functools", "pathlib", "typing", "collections", "contextlib"}
    for file in sorted((PACKAGE / "model").glob("*.py")):
        for name in imports_of(file):
            root = name.split(".")[0]
            assert root == "saccade" or root in THIRD_PARTY_IN_MODEL | stdlib_ok, f"{file.name} imports {name}"

"""The scheduler's three parts import in one direction: live -> policies <- sim, nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sloflow.scheduler

PACKAGE = "sloflow.scheduler"
ROOT = Path(sloflow.scheduler.__file__).parent
PARTS = ("policies", "live", "sim")
# What each part must not import: the policies are shared, so they depend on neither path.
FORBIDDEN = {"policies": ("live", "sim", "ray"), "live": ("sim",), "sim": ("live", "ray")}


def _package(path: Path) -> str:
    return ".".join(path.parent.relative_to(ROOT.parent.parent).parts)


def _imported(source: str, package: str) -> set[str]:
    """Every module `source` imports, lazy imports inside functions included, relative ones resolved
    from `package` (the package the module is in)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return found


def _part_of(module: str) -> str | None:
    if module == "ray" or module.startswith("ray."):
        return "ray"
    head, _, rest = module.partition(PACKAGE + ".")
    return rest.split(".")[0] if not head and rest.split(".")[0] in PARTS else None


def test_every_scheduler_module_lives_in_one_of_the_three_parts() -> None:
    stray = [p.name for p in ROOT.glob("*.py") if p.name != "__init__.py"]
    assert not stray, f"put {stray} in one of {PARTS}"
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(PARTS)


@pytest.mark.parametrize("part", PARTS)
def test_imports_run_only_from_live_and_sim_into_policies(part: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / part).rglob("*.py"))
        for module in _imported(path.read_text(), _package(path))
        if _part_of(module) in FORBIDDEN[part]
    }
    assert not wrong, f"{part} must not import {FORBIDDEN[part]}: {sorted(wrong)}"


def test_the_checker_sees_lazy_relative_and_submodule_imports() -> None:
    source = "def f():\n    from ..live import client\n    import ray.util\nfrom sloflow.scheduler import sim\n"
    assert {_part_of(m) for m in _imported(source, f"{PACKAGE}.policies")} == {"live", "ray", "sim", None}

"""Dependencies point one way: services → patchtwin → schemas. Only the composition root
(`patchtwin.cli`) knows the services, and the contract and the error tree load light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HEAVY = ("faststream", "aiodocker", "opentelemetry.sdk", "aiokafka", "asyncpg", "kubernetes_asyncio")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (late imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def top_level(modules: set[str]) -> set[str]:
    return {module.split(".")[0] for module in modules}


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("module", ["schemas", "patchtwin.exceptions", "patchtwin.settings"])
def test_a_fresh_interpreter_importing_the_contract_loads_no_broker_engine_or_tracing_sdk(module: str) -> None:
    program = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", program], cwd=ROOT, text=True))
    heavy = [name for name in loaded if name.startswith(HEAVY)]
    assert heavy == [], f"import {module} loaded {heavy[:5]}"
    assert not [name for name in loaded if name == "services" or name.startswith("services.")]


def test_schemas_import_nothing_of_patchtwin_or_the_services() -> None:
    for path in package_files("schemas"):
        assert not top_level(imported_modules(path)) & {"patchtwin", "services"}, path


def test_only_the_composition_root_imports_the_services() -> None:
    offenders = [
        path.relative_to(ROOT)
        for path in package_files("patchtwin")
        if "services" in top_level(imported_modules(path)) and not path.is_relative_to(ROOT / "patchtwin" / "cli")
    ]
    assert offenders == []


def test_services_never_import_each_other() -> None:
    for service in sorted(p for p in (ROOT / "services").iterdir() if (p / "router.py").exists()):
        for path in service.rglob("*.py"):
            others = {
                module.split(".")[1]
                for module in imported_modules(path)
                if module.startswith("services.") and module.count(".") >= 1
            } - {service.name}
            assert not others, f"{path.relative_to(ROOT)} imports services {others}"


def test_the_lower_layers_never_import_the_composition_root() -> None:
    for layer in ("core", "twins", "checks", "observability"):
        for path in package_files(f"patchtwin/{layer}"):
            assert not any(m.startswith("patchtwin.cli") for m in imported_modules(path)), path


def test_the_core_does_not_reach_up_into_twins_or_checks() -> None:
    for path in package_files("patchtwin/core"):
        upward = {m for m in imported_modules(path) if m.startswith(("patchtwin.twins", "patchtwin.checks"))}
        assert not upward, f"{path.relative_to(ROOT)} imports {upward}"

"""The dependency rule: services import shared, never each other; shared imports no service."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: Path) -> set[tuple[Path, str]]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {(path, alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((path, node.module))
    return found


def test_shared_imports_no_service() -> None:
    bad = {(str(p), m) for p, m in _imports(ROOT / "shared") if m.split(".")[0] in {"services", "ops", "tests"}}
    assert not bad


def test_services_do_not_import_each_other() -> None:
    for name, other in (("loyalty", "referral"), ("referral", "loyalty")):
        bad = {
            (str(p), m)
            for p, m in _imports(ROOT / "services" / name)
            if m.startswith(f"services.{other}") or m.split(".")[0] in {"ops", "tests"}
        }
        assert not bad, f"{name} imports {bad}"

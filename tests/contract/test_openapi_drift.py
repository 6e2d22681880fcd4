"""The committed contracts (openapi/*.json) are what the code serves, and document every problem (§3.2)."""

from __future__ import annotations

import difflib
import json
from typing import Any

import pytest

from ops.cli import SERVICES, openapi_text
from ops.database import PROJECT_DIR
from shared.errors import PROBLEM_MEDIA_TYPE

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def committed_text(service: str) -> str:
    path = PROJECT_DIR / "openapi" / f"{service}.json"
    assert path.exists(), f"{path} is missing: run `make openapi` and commit it"
    return path.read_text()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


@pytest.fixture(params=sorted(SERVICES), scope="module")
def service(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def spec(service: str) -> dict[str, Any]:
    return json.loads(committed_text(service))


def test_committed_contract_matches_the_code(service: str) -> None:
    expected, committed = openapi_text(service), committed_text(service)
    if committed != expected:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    expected.splitlines(keepends=True),
                    f"openapi/{service}.json (committed)",
                    f"openapi/{service}.json (from the code)",
                )
            )[:60]
        )
        pytest.fail(f"openapi/{service}.json differs from the code: run `make openapi` and commit it\n{diff}")


def test_every_operation_has_an_operation_id(spec: dict[str, Any]) -> None:
    missing = [f"{method} {path}" for method, path, op in operations(spec) if not op.get("operationId")]
    assert not missing, f"operations without operationId: {missing}"
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {sorted(ids)}"


def _documents_problem(operation: dict[str, Any], status: int) -> bool:
    content = operation["responses"].get(str(status), {}).get("content", {})
    return set(content) == {PROBLEM_MEDIA_TYPE}


def test_every_operation_documents_400_and_500_problems(spec: dict[str, Any]) -> None:
    missing = [
        f"{method} {path}: {status}"
        for method, path, op in operations(spec)
        for status in (400, 500)
        if not _documents_problem(op, status)
    ]
    assert not missing, f"not documented as {PROBLEM_MEDIA_TYPE}: {missing}"


def test_every_operation_but_livez_documents_503(spec: dict[str, Any]) -> None:
    """Every operation that uses the database can meet it unreachable or past `statement_timeout`."""
    missing = [
        f"{method} {path}"
        for method, path, op in operations(spec)
        if op["operationId"] != "livez" and not _documents_problem(op, 503)
    ]
    assert not missing, f"operations without a 503 {PROBLEM_MEDIA_TYPE}: {missing}"


def test_operations_with_auth_document_401(spec: dict[str, Any]) -> None:
    default_security = spec.get("security", [])
    missing = [
        f"{method} {path}"
        for method, path, op in operations(spec)
        # An operation's own `security` replaces the document's; `[]` or `[{}]` means no credentials.
        if any(requirement for requirement in op.get("security", default_security)) and not _documents_problem(op, 401)
    ]
    assert not missing, f"authenticated operations without a 401 {PROBLEM_MEDIA_TYPE}: {missing}"


def test_every_error_response_is_a_problem(spec: dict[str, Any]) -> None:
    wrong = [
        f"{method} {path}: {status} {sorted(response.get('content', {}))}"
        for method, path, op in operations(spec)
        for status, response in op["responses"].items()
        if int(status) >= 400 and set(response.get("content", {})) != {PROBLEM_MEDIA_TYPE}
    ]
    assert not wrong, f"error responses not documented as {PROBLEM_MEDIA_TYPE}: {wrong}"

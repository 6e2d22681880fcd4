"""Schemathesis against the committed contracts (openapi/*.json), in-process, on a database of its own.

`parametrize` needs the schema at import time, the database exists only once a fixture made it. So each
schema is bound at import to a `DeferredApp`, an ASGI app that forwards to the real one, which the
`contract_apps` fixture creates and binds before the first case runs.

schemathesis (>= 4.32) starts an app's lifespan once per process, on an event loop thread of its own, and
keeps it until exit; the fixture ends those lifespans itself, before the database is dropped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
import schemathesis.config
import schemathesis.python.asgi
from litestar import Litestar
from schemathesis import Case

from ops.cli import SERVICES, migrate, provision
from ops.database import PROJECT_DIR
from shared.tenants import TenantIn
from tests.conftest import OPERATOR, settings_for

MAX_EXAMPLES = 25
ACCEPTED_WITH_RULE_REFUSAL = ["2xx", "3xx", 401, 403, 404, 409, 412, 422, 429, "5xx"]

# All built-in checks, both generation modes, every phase `parametrize` runs (stateful is not one of them).
# A schema-valid request may still break a business rule that JSON Schema cannot state (rates summing to
# more than 100 %, a self-referral, an unknown time zone): that is a documented 422, never a 400.
CONFIG = {
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
    "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_WITH_RULE_REFUSAL}},
    "operations": [
        {
            # Every `list*` operation takes an opaque cursor: a schema-valid string we did not issue is the
            # documented 400 `invalid-cursor` (a cursor's content cannot be described in JSON Schema).
            "include-operation-id-regex": "^list",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED_WITH_RULE_REFUSAL, 400]}},
        },
    ],
}


class DeferredApp:
    """An ASGI app bound after import; its identity is stable, so schemathesis keys one lifespan on it."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.app: Litestar | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            raise RuntimeError(f"the {self.service} app is not bound: the test must use the contract_apps fixture")
        await self.app(scope, receive, send)


def load(service: str) -> tuple[schemathesis.BaseSchema, DeferredApp]:
    config = schemathesis.config.SchemathesisConfig.from_dict(CONFIG)
    schema = schemathesis.openapi.from_path(PROJECT_DIR / "openapi" / f"{service}.json", config=config)
    deferred = DeferredApp(service)
    schema.app = deferred
    return schema, deferred


loyalty_schema, loyalty_app = load("loyalty")
referral_schema, referral_app = load("referral")
DEFERRED = {"loyalty": loyalty_app, "referral": referral_app}


@pytest.fixture(scope="session")
def contract_apps(fresh_database: Callable[[], str]) -> Iterator[dict[str, str]]:
    """Both apps on a database no other test uses; yields the Authorization header per credential."""
    url = fresh_database()
    migrate(url)
    tenant_id = "contract-" + uuid.uuid4().hex[:8]
    keys = asyncio.run(provision(url, tenant_id, TenantIn(name="Contract tests"), {"admin": ["admin", "client"]}))
    assert keys["admin"], "a fresh database cannot already hold the key"
    for service, deferred in DEFERRED.items():
        deferred.app = SERVICES[service].create_app(settings_for(service, url))
    try:
        yield {"admin": f"Bearer {keys['admin']}", "operator": OPERATOR["Authorization"]}
    finally:
        # The pools close on schemathesis's own loop, before fresh_database drops the database.
        schemathesis.python.asgi.shutdown_lifespans()
        for deferred in DEFERRED.values():
            deferred.app = None


def _breaks_credentials(case: Case) -> bool:
    """A negative case that removed or broke the Authorization header: adding ours back would make the
    request valid again, and its 2xx would read as schema-violating data accepted."""
    data = case.meta.phase.data if case.meta is not None else None
    if data is None:
        return False
    targets = [(data.parameter_location, data.parameter)]
    targets += [(m.parameter_location, m.parameter) for m in data.mutations]
    return any(
        location is not None and location.value == "header" and (name or "").lower() == "authorization"
        for location, name in targets
    )


def call_and_validate(case: Case, credentials: dict[str, str]) -> None:
    # Explicit credentials: `ignored_auth` then also checks that no or wrong credentials are refused.
    credential = "operator" if case.operation.path.startswith("/v1/tenants") else "admin"
    headers = None if _breaks_credentials(case) else {"Authorization": credentials[credential]}
    case.call_and_validate(headers=headers)


@loyalty_schema.parametrize()
def test_loyalty_contract(case: Case, contract_apps: dict[str, str]) -> None:
    call_and_validate(case, contract_apps)


@referral_schema.parametrize()
def test_referral_contract(case: Case, contract_apps: dict[str, str]) -> None:
    call_and_validate(case, contract_apps)

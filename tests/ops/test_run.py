"""`make run` end to end: a fresh data folder, both services up, keys that work, a clean stop, a reuse."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never became ready")


def _postgres_running(data_dir: Path) -> bool:
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(data_dir) in " ".join(proc.info["cmdline"] or []):
            return True
    return False


def _start(data_dir: Path, ports: tuple[int, int]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "OPERATOR_TOKEN"}}
    env |= {"DATA_DIR": str(data_dir), "LOYALTY_PORT": str(ports[0]), "REFERRAL_PORT": str(ports[1]), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "ops", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


@pytest.mark.slow
def test_run_serves_both_services_and_stops_cleanly() -> None:
    data_dir = Path("/tmp") / f"run-{os.getpid()}"  # short: the server's socket path has a length limit
    ports = (_free_port(), _free_port())
    proc = _start(data_dir, ports)
    try:
        deadline = time.monotonic() + 120
        for port in ports:
            _wait_ready(f"http://127.0.0.1:{port}/readyz", deadline)
        keys = json.loads((data_dir / "demo_keys.json").read_text())
        token = (data_dir / "operator_token").read_text().strip()
        for port in ports:
            admin = {"Authorization": f"Bearer {keys['demo-admin']}"}
            assert httpx.get(f"http://127.0.0.1:{port}/v1/ledger/verify", headers=admin).json()["ok"] is True
            tenant = httpx.get(f"http://127.0.0.1:{port}/v1/tenants/demo", headers={"Authorization": f"Bearer {token}"})
            assert tenant.json()["tenant_id"] == "demo"
            assert httpx.get(f"http://127.0.0.1:{port}/docs/openapi.json").status_code == 200
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert keys["demo-admin"] in out and token in out
    assert not _postgres_running(data_dir), "postgres was left running"

    # A second run reuses the data folder: same keys, same token.
    proc = _start(data_dir, ports)
    try:
        _wait_ready(f"http://127.0.0.1:{ports[0]}/readyz", time.monotonic() + 120)
        admin = {"Authorization": f"Bearer {keys['demo-admin']}"}
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/v1/ledger/verify", headers=admin).status_code == 200
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert not _postgres_running(data_dir)
    subprocess.run(["rm", "-rf", str(data_dir)], check=False)

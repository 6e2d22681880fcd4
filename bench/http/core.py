"""The HTTP benchmark's machinery: the service under test, wrk, pgbench, CPU shares, SQL capture.

Nothing here knows a service's endpoints: `bench/http/<service>.py` modules describe their seeding
and scenarios with `ServicePlugin` and `Scenario`, and `bench/http/__main__.py` runs them.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from bench.ledger import _parse_pgbench_logs, _percentile, pgbench_path

__all__ = [
    "BENCH_DIR",
    "Capture",
    "CapturedCall",
    "Context",
    "CpuWindow",
    "LoadResult",
    "PgbenchScript",
    "Scenario",
    "ServicePlugin",
    "ServiceProcess",
    "Target",
    "capture_request",
    "check_pgbench",
    "ensure_py_spy",
    "ensure_wrk",
    "gather_limited",
    "processes_cpu",
    "profile_cprofile",
    "profile_py_spy",
    "recording_app",
    "run_pgbench",
    "run_wrk",
    "seed_request",
    "summarize_cprofile",
    "summarize_profile",
    "target_value",
    "to_pgbench",
]

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
BENCH_DIR = PROJECT_DIR / "bench"  # the wrk Lua scripts live here

# --------------------------------------------------------------------------------------------------
# What a service module provides
# --------------------------------------------------------------------------------------------------


@dataclass
class Context:
    """Shared by a service's seeding and its scenarios: where the service is and what was seeded."""

    service: str
    base_url: str
    dsn: str  # the bench database (search_path is set per connection to the service's schema)
    tenant_id: str
    admin_key: str
    client_key: str
    run_tag: str  # unique per bench run: keeps generated business ids unique across runs
    args: Any  # the parsed command line (sizes, durations)
    selected: set[str] = field(default_factory=set)  # the scenarios of this run: seed only what they need
    seeded: dict[str, Any] = field(default_factory=dict)  # whatever seeding wants scenarios to know

    def headers(self, scope: str = "client") -> dict[str, str]:
        key = self.admin_key if scope == "admin" else self.client_key
        return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Capture:
    """One real request whose SQL becomes the pgbench script of a scenario.

    `warm` requests run first (auth cache, first-touch work), then `request` is recorded. In the
    recorded SQL, every occurrence of a `substitutions` key (a string the request put there: an order
    id, a member id) is replaced with its SQL expression over pgbench variables (`:i`, `:n`, ...),
    which `preamble` (pgbench meta-commands) sets for every transaction.
    """

    method: str
    path: str
    json: Any = None
    scope: str = "client"
    warm: Sequence[tuple[str, str, Any]] = ()  # (method, path, json)
    substitutions: dict[str, str] = field(default_factory=dict)
    preamble: str = ""
    # columns besides `*id` whose returned value flows into a later statement (a slot number the
    # service reads and then inserts): `\gset` like generated ids, not a constant
    flows: Sequence[str] = ()


@dataclass(frozen=True)
class Target:
    """A goal from the issue: `metric` of the result compared with `limit` (`op`: '>=' or '<')."""

    metric: str  # "p99_ms", "ratio" (HTTP req/s ÷ pgbench TPS), "rps"
    op: str
    limit: float
    clients: int = 32
    relative_to: str | None = None  # another scenario of the service: the metric ÷ that scenario's

    def describe(self) -> str:
        names = {"p99_ms": "p99", "ratio": "req/s ÷ pgbench TPS", "rps": "req/s"}
        name = names.get(self.metric, self.metric)
        if self.relative_to:
            return f"{name} ÷ {self.relative_to}'s {name} {self.op} {self.limit:g} at {self.clients} clients"
        unit = " ms" if self.metric.endswith("_ms") else ""
        return f"{name} {self.op} {self.limit:g}{unit} at {self.clients} clients"

    def met(self, value: float | None) -> bool | None:
        if value is None or math.isnan(value):
            return None
        return value >= self.limit if self.op == ">=" else value < self.limit


def target_value(target: Target, row: dict[str, Any], rows: Sequence[dict[str, Any]]) -> float | None:
    """The value a target judges in a result row (`bench/http/__main__.py`'s rows: service, scenario,
    wrk, ratio); with `relative_to`, divided by the same metric of that scenario at the same clients."""

    def value(of: dict[str, Any]) -> float | None:
        if target.metric == "ratio":
            return of["ratio"]  # type: ignore[no-any-return]
        return getattr(of["wrk"], target.metric.replace("rps", "rate"))  # type: ignore[no-any-return]

    mine = value(row)
    if not target.relative_to:
        return mine
    base = next(
        (
            value(r)
            for r in rows
            if r["service"] == row["service"]
            and r["scenario"] == target.relative_to
            and r["wrk"].clients == row["wrk"].clients
        ),
        None,
    )
    return None if mine is None or not base else mine / base


@dataclass(frozen=True)
class Scenario:
    """One thing measured: wrk drives `lua` over HTTP; pgbench runs the SQL that `capture` records."""

    name: str
    label: str
    lua: str  # a file in bench/
    lua_args: Callable[[Context, str], dict[str, Any]]  # (context, unique run tag) -> wrk script arguments
    # (context, k) -> the request whose SQL pgbench runs (k = 1) and a second of the same shape (k = 0)
    # that tells generated ids (which differ) from constants (which do not)
    capture: Callable[[Context, int], Capture]
    pgbench_vars: Callable[[Context], dict[str, Any]] = lambda ctx: {}
    targets: Sequence[Target] = ()
    default: bool = True
    profile: bool = False  # profiled with py-spy under `--profile`


@dataclass(frozen=True)
class ServicePlugin:
    """A service under test: how to start it, what to seed, what to measure."""

    name: str  # also its schema and its migrations' name
    factory: str  # uvicorn --factory target
    create_app: Callable[[Any], Any]  # settings -> app, for the in-process SQL capture
    seed: Callable[[Context, httpx.AsyncClient], Awaitable[None]]
    seed_params: Callable[[Any], dict[str, Any]]  # the arguments seeding depends on (the seed cache's key)
    scenarios: Sequence[Scenario]


# --------------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------------


def ensure_wrk(log: Callable[[str], None]) -> str | None:
    """Path of wrk, installing Debian's package when running as root; None when it cannot."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        return None
    log("wrk is missing: apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=False)
    return shutil.which("wrk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------------
# CPU accounting
# --------------------------------------------------------------------------------------------------


def _cpu(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return t.user + t.system


def processes_cpu(root: psutil.Process | None, *, include_root: bool = True) -> dict[int, float]:
    """CPU seconds so far of `root` and its descendants (postgres: postmaster and every backend)."""
    if root is None:
        return {}
    try:
        procs = ([root] if include_root else []) + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return {}
    return {p.pid: _cpu(p) for p in procs}


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two samples; a process born in between counts from its start."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def machine_busy() -> tuple[float, float]:
    times = psutil.cpu_times()
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total


@dataclass
class CpuWindow:
    """CPU shares over one measured window, in % of the whole machine (all cores)."""

    server: psutil.Process | None
    postgres: psutil.Process | None
    started: float = 0.0
    _server0: dict[int, float] = field(default_factory=dict)
    _pg0: dict[int, float] = field(default_factory=dict)
    _busy0: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self.started = time.monotonic()
        self._server0 = processes_cpu(self.server)
        self._pg0 = processes_cpu(self.postgres)
        self._busy0 = machine_busy()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        cores = psutil.cpu_count() or 1
        server = cpu_between(self._server0, processes_cpu(self.server))
        pg = cpu_between(self._pg0, processes_cpu(self.postgres))
        busy1 = machine_busy()
        return {
            "wall_s": wall,
            "server_cpu_pct": 100 * server / (wall * cores),
            "postgres_cpu_pct": 100 * pg / (wall * cores),
            "machine_busy_pct": 100 * (busy1[0] - self._busy0[0]) / max(1e-9, busy1[1] - self._busy0[1]),
        }


# --------------------------------------------------------------------------------------------------
# The service under test: one uvicorn worker in its own process, as in production
# --------------------------------------------------------------------------------------------------


class ServiceProcess:
    def __init__(
        self,
        plugin: ServicePlugin,
        dsn: str,
        operator_token: str,
        pool_size: int,
        log_dir: Path,
        profile_to: Path | None = None,
    ) -> None:
        self.plugin = plugin
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{plugin.name}-server.log"
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "OPERATOR_TOKEN": operator_token,
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "true",
            "SCHEDULER_ENABLED": "false",
            "DB_POOL_MIN_SIZE": str(pool_size),
            "DB_POOL_MAX_SIZE": str(pool_size),
        }
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            plugin.factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self.command = " ".join(cmd[1:])
        self.profile_to = profile_to
        if profile_to is not None:  # cProfile on a CPU clock, switched by signals (bench/http/profiled.py)
            cmd = [sys.executable, "-m", "bench.http.profiled", plugin.factory, str(self.port), str(profile_to)]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_DIR, stdout=self._log, stderr=subprocess.STDOUT)
        self.handle = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.plugin.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.plugin.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: uvicorn's graceful shutdown closes the pool
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --------------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """One measured run of one load generator (wrk over HTTP, or pgbench over SQL)."""

    tool: str
    clients: int
    duration_s: float
    requests: int
    rate: float  # requests (wrk) or transactions (pgbench) per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    failures: int  # wrk: non-2xx responses + socket errors; pgbench: failed transactions
    client_cpu_pct: float  # the load generator's own CPU, in % of the machine
    server_cpu_pct: float  # the service process (wrk runs), 0 for pgbench
    postgres_cpu_pct: float
    machine_busy_pct: float
    detail: dict[str, Any] = field(default_factory=dict)


_RESULT_LINE = re.compile(r"^BENCH_RESULT (\{.*\})\s*$", re.MULTILINE)


def _wrk_once(
    wrk: str, url: str, lua: str, clients: int, threads: int, seconds: float, script_args: dict[str, Any]
) -> tuple[dict[str, Any], str, float]:
    """Run wrk once; returns its done() JSON, its output and its own CPU seconds."""
    cmd = [wrk, "-t", str(threads), "-c", str(clients), "-d", f"{max(1, round(seconds))}s", "--timeout", "10s"]
    cmd += ["-s", str(BENCH_DIR / lua), url, "--", *(f"{k}={v}" for k, v in script_args.items())]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = _RESULT_LINE.search(proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(
            f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return json.loads(found.group(1)), proc.stdout, cpu


def run_wrk(
    wrk: str,
    server: ServiceProcess,
    postgres: psutil.Process | None,
    lua: str,
    script_args: Callable[[str], dict[str, Any]],
    clients: int,
    threads: int,
    warmup: float,
    duration: float,
) -> LoadResult:
    """A warm-up run (discarded), then the measured run; CPU shares over the measured run only."""
    tag = secrets.token_hex(3)
    if warmup > 0:
        _wrk_once(wrk, server.base_url, lua, clients, threads, warmup, script_args(tag + "w"))
    window = CpuWindow(server.handle, postgres)
    window.start()
    data, output, wrk_cpu = _wrk_once(wrk, server.base_url, lua, clients, threads, duration, script_args(tag + "m"))
    shares = window.stop()
    cores = psutil.cpu_count() or 1
    seconds = data["duration_us"] / 1e6
    errors = data["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    non_2xx = max(data["non_2xx"], errors["status"])
    return LoadResult(
        tool="wrk",
        clients=clients,
        duration_s=seconds,
        requests=data["requests"],
        rate=data["requests"] / seconds,
        p50_ms=data["latency_us"]["p50"] / 1000,
        p90_ms=data["latency_us"]["p90"] / 1000,
        p99_ms=data["latency_us"]["p99"] / 1000,
        max_ms=data["latency_us"]["max"] / 1000,
        failures=non_2xx + socket_errors,
        client_cpu_pct=100 * wrk_cpu / (shares["wall_s"] * cores),
        server_cpu_pct=shares["server_cpu_pct"],
        postgres_cpu_pct=shares["postgres_cpu_pct"],
        machine_busy_pct=shares["machine_busy_pct"],
        detail={
            "non_2xx": non_2xx,
            "socket_errors": errors,
            "first_non_2xx": data.get("first_non_2xx"),
            "statuses": data.get("statuses"),
            "threads": threads,
            "wrk_summary": output.split("BENCH_RESULT")[0].strip(),
        },
    )


# --------------------------------------------------------------------------------------------------
# pgbench
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgbenchScript:
    text: str
    variables: dict[str, Any]


def run_pgbench(
    dsn: str,
    schema: str,
    postgres: psutil.Process | None,
    script: PgbenchScript,
    clients: int,
    warmup: float,
    duration: float,
    name: str,
) -> LoadResult:
    """pgbench -M prepared over warm-up + duration; only transactions ending in the window count."""
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        folder = Path(tmp)
        path = folder / f"{name}.sql"
        path.write_text(script.text)
        # A tail after the window: the CPU of pgbench and of its backends is read while they still run.
        total = math.ceil(warmup + duration + 2)
        cmd = [str(pgbench_path()), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(2, clients))]
        cmd += ["-T", str(total)]
        for key, value in script.variables.items():
            cmd += ["-D", f"{key}={value}"]
        cmd += ["-l", "--log-prefix", str(folder / "log"), "-f", str(path), dsn]
        # The service's session settings (shared.db.create_pool): schema, UTC.
        env = {**os.environ, "PGOPTIONS": f"-c search_path={schema} -c timezone=UTC"}
        launched = time.time()
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        handle = psutil.Process(proc.pid)
        window_start, window_end = launched + warmup, launched + warmup + duration
        time.sleep(max(0.0, window_start - time.time()))
        window = CpuWindow(None, postgres)
        window.start()
        own0 = _cpu(handle)
        time.sleep(max(0.0, window_end - time.time()))
        own1 = _cpu(handle)
        shares = window.stop()
        stdout, stderr = proc.communicate()
        latencies, failed = _parse_pgbench_logs(folder, "log", window_start, window_end)
    if proc.returncode != 0 or "aborted" in stderr or "aborted" in stdout:
        raise RuntimeError(f"pgbench {name} failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-3000:]}")
    latencies.sort()
    cores = psutil.cpu_count() or 1
    return LoadResult(
        tool="pgbench",
        clients=clients,
        duration_s=duration,
        requests=len(latencies),
        rate=len(latencies) / duration,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p90_ms=_percentile(latencies, 0.90) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] * 1000) if latencies else float("nan"),
        failures=failed,
        client_cpu_pct=100 * (own1 - own0) / (shares["wall_s"] * cores),
        server_cpu_pct=0.0,
        postgres_cpu_pct=shares["postgres_cpu_pct"],
        machine_busy_pct=shares["machine_busy_pct"],
        detail={"command": " ".join(["pgbench", *cmd[1:-1], "<dsn>"])},
    )


def check_pgbench(dsn: str, schema: str, script: PgbenchScript, name: str) -> None:
    """Run the script once (-t 1) so that a bad translation fails loudly before anything is measured."""
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        path = Path(tmp) / f"{name}.sql"
        path.write_text(script.text)
        cmd = [str(pgbench_path()), "-n", "-M", "prepared", "-c", "1", "-t", "1"]
        for key, value in script.variables.items():
            cmd += ["-D", f"{key}={value}"]
        cmd += ["-f", str(path), dsn]
        env = {**os.environ, "PGOPTIONS": f"-c search_path={schema} -c timezone=UTC"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or "aborted" in proc.stderr:
        raise RuntimeError(f"pgbench script {name} does not run:\n{proc.stderr[-3000:]}\n--- script ---\n{script.text}")


# --------------------------------------------------------------------------------------------------
# SQL capture: the statements of one real request, recorded in-process through the service's own code
# --------------------------------------------------------------------------------------------------


@dataclass
class CapturedCall:
    query: str
    args: tuple[Any, ...]
    row: dict[str, Any] | None  # the single row it returned, if exactly one


class _Recording:
    active = False
    calls: list[CapturedCall] = []

    @classmethod
    def add(cls, query: str, args: Sequence[Any], rows: Sequence[Any] | None) -> None:
        if cls.active:
            row = dict(rows[0].items()) if rows is not None and len(rows) == 1 and rows[0] is not None else None
            cls.calls.append(CapturedCall(query, tuple(args), row))


class RecordingConnection(asyncpg.Connection):  # type: ignore[misc]
    """Records every statement the application sends (public API only: not asyncpg's introspection).

    The overrides keep asyncpg's signatures, `timeout` included (hence the ASYNC109 waivers).
    """

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109
        try:
            return await super().execute(query, *args, timeout=timeout)  # type: ignore[no-any-return]
        finally:
            _Recording.add(query, args, None)

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        args = list(args)
        try:
            await super().executemany(command, args, timeout=timeout)
        finally:
            for one in args:
                _Recording.add(command, one, None)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None) -> Any:  # noqa: ASYNC109
        rows = None
        try:
            rows = await super().fetch(query, *args, timeout=timeout, record_class=record_class)
            return rows
        finally:
            _Recording.add(query, args, rows)

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None) -> Any:  # noqa: ASYNC109
        row = None
        try:
            row = await super().fetchrow(query, *args, timeout=timeout, record_class=record_class)
            return row
        finally:
            _Recording.add(query, args, None if row is None else [row])

    async def fetchval(self, query: str, *args: Any, column: int | str = 0, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        row = None
        try:
            row = await super().fetchrow(query, *args, timeout=timeout)
            return None if row is None else row[column]
        finally:
            _Recording.add(query, args, None if row is None else [row])


@asynccontextmanager
async def recording_app(plugin: ServicePlugin, dsn: str, operator_token: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service in this process, its pool's connections recording; an httpx client on it."""
    from shared.settings import load_settings

    env = {"OPERATOR_TOKEN": operator_token, "LOG_LEVEL": "WARNING", "LOG_JSON": "true", "SCHEDULER_ENABLED": "false"}
    env |= {"DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "2"}
    app = plugin.create_app(load_settings(plugin.name, dsn, env))
    original = asyncpg.create_pool

    def create_pool(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("connection_class", RecordingConnection)
        return original(*args, **kwargs)

    started, stop = asyncio.Event(), asyncio.Event()

    async def hold_lifespan() -> None:  # entered and left in one task (anyio's rule)
        async with app.lifespan():
            started.set()
            await stop.wait()

    asyncpg.create_pool = create_pool
    try:
        holder = asyncio.create_task(hold_lifespan())
        await asyncio.wait([holder, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    finally:
        asyncpg.create_pool = original
    if holder.done():
        holder.result()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://capture") as client:
            yield client
    finally:
        stop.set()
        await holder


async def capture_request(client: httpx.AsyncClient, ctx: Context, capture: Capture) -> list[CapturedCall]:
    headers = ctx.headers(capture.scope)
    for method, path, body in capture.warm:
        response = await client.request(method, path, json=body, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"warm-up {method} {path}: {response.status_code} {response.text[:500]}")
    _Recording.calls = []
    _Recording.active = True
    try:
        response = await client.request(capture.method, capture.path, json=capture.json, headers=headers)
    finally:
        _Recording.active = False
    if response.status_code >= 300:
        raise RuntimeError(f"captured {capture.method} {capture.path}: {response.status_code} {response.text[:500]}")
    return list(_Recording.calls)


# --------------------------------------------------------------------------------------------------
# Captured SQL -> pgbench script
# --------------------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_\x80-\uffff]")
_PARAM = re.compile(r"\$(\d+)")


def _quote_pieces(text: str) -> list[str]:
    """`text` as quoted SQL literals; split after any ':' followed by a name, which pgbench would
    otherwise read as a variable (`'member:' || 'x:' || 'commission_frozen'`)."""
    pieces, start = [], 0
    for i, ch in enumerate(text):
        if ch == ":" and i + 1 < len(text) and _IDENT.match(text[i + 1]):
            pieces.append(text[start : i + 1])
            start = i + 1
    pieces.append(text[start:])
    return ["'" + piece.replace("'", "''") + "'" for piece in pieces if piece] or ["''"]


def _expression(text: str, substitutions: dict[str, str], name: str) -> tuple[str, dict[str, str]]:
    """A text value as SQL over pgbench variables: its constant pieces become variables `name_k` (sent
    as bind parameters, as the service sends the value), its substituted parts their expressions."""
    if substitutions:
        pattern = "(" + "|".join(re.escape(k) for k in sorted(substitutions, key=len, reverse=True)) + ")"
        parts = re.split(pattern, text)
    else:
        parts = [text]
    rendered: list[str] = []
    variables: dict[str, str] = {}
    for i, part in enumerate(parts):
        if i % 2:
            rendered.append(f"({substitutions[part]})")
        elif part or len(parts) == 1:
            variable = name if len(parts) == 1 else f"{name}_{i // 2}"
            if part:
                variables[variable] = part
                rendered.append(f":{variable}")
            else:  # pgbench refuses `-D name=`: an empty string, still a parameter (not a constant)
                variables[variable] = "-"
                rendered.append(f"left(:{variable}, 0)")
    return " || ".join(rendered), variables


def _clean_static_sql(query: str) -> str:
    """The statement's own text, pgbench-safe: comments dropped, its literals split like values."""
    out: list[str] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch == "-" and query.startswith("--", i):
            end = query.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch == "'":
            j = i + 1
            while j < n:
                if query[j] == "'" and j + 1 < n and query[j + 1] == "'":
                    j += 2
                    continue
                if query[j] == "'":
                    break
                j += 1
            literal = query[i + 1 : j].replace("''", "'")
            pieces = _quote_pieces(literal)
            out.append(pieces[0] if len(pieces) == 1 else "(" + " || ".join(pieces) + ")")
            i = j + 1
            continue
        out.append(ch)
        i += 1
    lines = [line.rstrip() for line in "".join(out).strip().rstrip(";").splitlines()]
    return "\n".join(line for line in lines if line.strip())


async def to_pgbench(
    helper: asyncpg.Connection,
    calls: Sequence[CapturedCall],
    capture: Capture,
    reference: Sequence[CapturedCall] = (),
) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
    """The pgbench script of the captured calls, its variables (-D), and how each statement maps.

    Each `$n` becomes `(:s<call>_<n>)::<its type>`, the value (PostgreSQL's text form of it) passed as
    a pgbench variable, so that pgbench binds it as a parameter as asyncpg does (a constant written
    into the SQL would be planned as a constant: another plan, e.g. for `member_id > ''`). Where a
    value holds one of `capture.substitutions`, that part is the substitution's expression instead.
    A value that an earlier statement returned in an `*id` column, and that differs from the same
    argument in `reference` (another capture of the same request shape), is a generated id flowing on
    (an entry id, an event id): it becomes that statement's `\\gset` variable, as in the application.
    """
    comparable = len(reference) == len(calls) and all(
        r.query == c.query and len(r.args) == len(c.args) for r, c in zip(reference, calls, strict=True)
    )
    produced: dict[Any, tuple[int, str]] = {}  # value -> (call index, column) that returned it
    gset: set[int] = set()  # calls whose row later statements use
    variables: dict[str, str] = {}  # the captured constants, given to pgbench with -D
    statements: list[str] = []
    account: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        sql = _clean_static_sql(call.query)
        if call.args:
            statement = await helper.prepare(call.query)
            types = [
                await helper.fetchval("SELECT format_type($1::oid, NULL)", p.oid) for p in statement.get_parameters()
            ]
            values: list[str] = []
            for position, (arg, typ) in enumerate(zip(call.args, types, strict=True)):
                varies = not comparable or reference[index].args[position] != arg
                if arg is None:
                    values.append(f"NULL::{typ}")
                elif isinstance(arg, int | str) and not isinstance(arg, bool) and arg in produced and varies:
                    source, column = produced[arg]
                    gset.add(source)
                    values.append(f"(:r{source}_{column})::{typ}")
                else:
                    text = await helper.fetchval(f"SELECT ($1::{typ})::text", arg)
                    sql_value, constants = _expression(text, capture.substitutions, f"s{index}_{position + 1}")
                    variables.update(constants)
                    values.append(f"({sql_value})::{typ}")
            sql = _PARAM.sub(lambda m, v=values: v[int(m.group(1)) - 1], sql)
        statements.append(sql)
        account.append({"statement": call.query.strip(), "args": [repr(a)[:200] for a in call.args]})
        for column, value in (call.row or {}).items():
            if (
                isinstance(value, int | str)
                and not isinstance(value, bool)
                and value not in capture.substitutions
                and (column.endswith("id") or column in capture.flows)
                and re.fullmatch(r"[a-z_][a-z0-9_]*", column)
            ):
                produced.setdefault(value, (index, column))
    script = [capture.preamble.strip()] if capture.preamble.strip() else []
    for index, sql in enumerate(statements):
        # \gset takes the place of the terminating semicolon
        script.append(f"{sql} \\gset r{index}_" if index in gset else sql + ";")
    return "\n".join(script) + "\n", variables, account


# --------------------------------------------------------------------------------------------------
# Profile: py-spy on the service process while wrk drives one scenario
# --------------------------------------------------------------------------------------------------


def ensure_py_spy(log: Callable[[str], None]) -> str | None:
    """py-spy in the project's virtual environment (installed on demand: only `--profile` needs it)."""
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    log("installing py-spy into the virtual environment (for --profile)")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], capture_output=True, check=False)
    return str(local) if local.exists() else shutil.which("py-spy")


def _frame_name(frame: str) -> str:
    """`handle (litestar/routes/http.py:123)` -> `handle (litestar/routes/http.py)`, paths shortened."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", str(PROJECT_DIR) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def summarize_profile(raw: str, top: int = 20) -> dict[str, Any]:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    self_counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count

    def ranked(counts: dict[str, int]) -> list[dict[str, Any]]:
        best = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [{"frame": k, "samples": v, "pct": round(100 * v / max(1, total), 1)} for k, v in best]

    by_package: dict[str, int] = {}
    for name, count in self_counts.items():
        path = name.rpartition("(")[2].rstrip(")")
        package = path.split("/", 1)[0] if "/" in path else (path or "?")
        by_package[package] = by_package.get(package, 0) + count
    project = {k: v for k, v in inclusive.items() if "services/" in k or "shared/" in k}
    return {
        "method": "py-spy, wall-clock samples at 100 Hz",
        "samples": total,
        "self": ranked(self_counts),
        "inclusive": ranked(inclusive),
        "inclusive_project": ranked(project),
        "self_by_package": ranked(by_package),
    }


def profile_py_spy(
    py_spy: str,
    wrk: str,
    server: ServiceProcess,
    lua: str,
    script_args: dict[str, Any],
    clients: int,
    threads: int,
    duration: float,
    out: Path,
) -> dict[str, Any]:
    """py-spy samples the service (100 Hz, GIL-holding Python frames only) while wrk runs."""
    seconds = max(1, round(duration))
    cmd = [py_spy, "record", "--pid", str(server.proc.pid), "--rate", "100", "--duration", str(seconds)]
    cmd += ["--format", "raw", "--output", str(out)]
    cmd.append("--native" if os.environ.get("BENCH_PROFILE_NATIVE") else "--nonblocking")
    spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    data, _, _ = _wrk_once(wrk, server.base_url, lua, clients, threads, seconds, script_args)
    output, _ = spy.communicate(timeout=60)
    if spy.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed ({spy.returncode}): {output[-1000:]}"}
    summary = summarize_profile(out.read_text())
    summary["raw"] = str(out)
    summary["rps_while_profiled"] = round(data["requests"] / (data["duration_us"] / 1e6), 1)
    return summary


def _where(path: str) -> str:
    for marker in ("site-packages/", str(PROJECT_DIR) + "/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(path: str, name: str) -> str:
    if path == "~":  # a C function: name its extension when the name says it
        for known in ("asyncpg", "uvloop", "msgspec", "httptools", "pydantic", "structlog"):
            if known in name:
                return known + " (C)"
        return "builtins (C)"
    where = _where(path)
    head = where.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in where or where.endswith(".py") else head


def summarize_cprofile(path: Path, requests: int, top: int = 25) -> dict[str, Any]:
    """Self and inclusive CPU per function (µs per request), and self CPU per package."""
    import pstats

    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in stats.values())
    per = 1e6 / max(1, requests)
    rows = []
    for (file, line, name), (_, calls, tt, ct, _) in stats.items():
        label = name if file == "~" else f"{name} ({_where(file)}:{line})"
        rows.append((label, calls, tt, ct, _package(file, name)))
    packages: dict[str, float] = {}
    for _, _, tt, _, package in rows:
        packages[package] = packages.get(package, 0.0) + tt

    def ranked(index: int, only_project: bool = False) -> list[dict[str, Any]]:
        candidates = [r for r in rows if not only_project or "services/" in r[0] or "shared/" in r[0]]
        best = sorted(candidates, key=lambda r: r[index], reverse=True)[:top]
        return [
            {
                "frame": r[0],
                "calls_per_request": round(r[1] / max(1, requests), 2),
                "us_per_request": round(r[index] * per, 1),
                "pct": round(100 * r[index] / max(1e-9, total), 1),
            }
            for r in best
        ]

    return {
        "method": "cProfile, CPU clock (time.process_time)",
        "requests": requests,
        "cpu_us_per_request": round(total * per, 1),
        "self": ranked(2),
        "inclusive": ranked(3),
        "inclusive_project": ranked(3, only_project=True),
        "self_by_package": [
            {"frame": k, "us_per_request": round(v * per, 1), "pct": round(100 * v / max(1e-9, total), 1)}
            for k, v in sorted(packages.items(), key=lambda kv: kv[1], reverse=True)
        ],
    }


def profile_cprofile(
    wrk: str,
    server: ServiceProcess,
    lua: str,
    script_args: Callable[[str], dict[str, Any]],
    clients: int,
    threads: int,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    """A warm-up, then cProfile on (SIGUSR1) for one wrk run, off (SIGUSR2): CPU per request by function."""
    assert server.profile_to is not None
    server.profile_to.unlink(missing_ok=True)
    if warmup > 0:
        _wrk_once(wrk, server.base_url, lua, clients, threads, warmup, script_args("pw"))
    server.proc.send_signal(10)  # SIGUSR1
    time.sleep(0.2)
    data, _, _ = _wrk_once(wrk, server.base_url, lua, clients, threads, duration, script_args("pm"))
    server.proc.send_signal(12)  # SIGUSR2: disable and write the stats
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not server.profile_to.exists():
        time.sleep(0.2)
    time.sleep(0.5)  # the dump finishes writing
    if not server.profile_to.exists():
        return {"error": "no profile written: " + server.log_tail()}
    summary = summarize_cprofile(server.profile_to, data["requests"])
    summary["rps_while_profiled"] = round(data["requests"] / (data["duration_us"] / 1e6), 1)
    summary["raw"] = str(server.profile_to)
    return summary


async def gather_limited(coros: Sequence[Awaitable[Any]], limit: int) -> list[Any]:
    """Await `coros` with at most `limit` in flight (seeding over HTTP)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[Any]) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def seed_request(
    client: httpx.AsyncClient, ctx: Context, method: str, path: str, body: Any, scope: str = "client"
) -> dict[str, Any]:
    """One seeding request, its JSON answer. Every one is idempotent (a PUT, or a POST with its business
    id), so a retry after a 5xx or a keep-alive connection the server closed as it was reused
    (httpx.ReadError) is safe; any other refusal stops the seeding."""
    problem = ""
    for attempt in range(5):
        try:
            response = await client.request(method, path, json=body, headers=ctx.headers(scope))
        except httpx.TransportError as exc:
            problem = repr(exc)
            await asyncio.sleep(0.1 * attempt)
            continue
        if response.status_code in (200, 201):
            return response.json()  # type: ignore[no-any-return]
        problem = f"{response.status_code} {response.text[:500]}"
        if response.status_code < 500:
            break
    raise RuntimeError(f"{method} {path}: {problem}")

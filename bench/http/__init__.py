"""HTTP benchmark (`make bench`, `python -m bench.http`): the running service over HTTP beside pgbench.

For each service module registered in `bench.http.__main__.SERVICES` (today `bench.http.referral`),
the benchmark builds a fresh database `bench_http` on the embedded server `.data/pg-bench` (or
`BENCH_DATABASE_URL`) through the real migrations, provisions a tenant, starts the service as
production does (`python -m uvicorn --factory services.<name>.app:create_app_from_env`, one worker,
in its own process), seeds it over HTTP, then for each scenario:

1. records the SQL of one real request, made in this process through the service's own code on a
   recording connection, and turns it into a pgbench script (same statements, same transaction
   boundaries, business ids drawn per transaction);
2. drives the service with wrk (Debian's package, a native load generator: it must not eat the CPU it
   measures) for a warm-up, then for the measured run: req/s, p50/p99, non-2xx (must be 0);
3. runs pgbench (-M prepared) with that script on the same server at the same client count.

The ratio req/s ÷ pgbench TPS is the cost of the Python layer. CPU shares (wrk, the service,
PostgreSQL, the whole machine) are measured over each run. Results: a table, `.data/bench/http.json`,
the captured SQL and pgbench scripts under `.data/bench/http/`. `--profile` (`make bench PROFILE=1`)
adds a py-spy run of the scenarios marked for it and prints their hottest frames.
"""

"""Benchmarks run from the command line (`make bench-ledger`), not by the test suite."""

"""Pruning to a measured latency budget: per-class latency tables, a solver, and the measured check (docs/latency.md)."""

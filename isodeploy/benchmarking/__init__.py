"""Benchmarks: latency, memory, reports, comparisons and the CI gate (the API function is :func:`isodeploy.bench`)."""

"""Pieces of ``benchmarks/isomorphic_vs_global.py``: a small-scale test of the paper's central claim.

The claim: at equal MACs, ranking channels within isomorphic classes beats ranking them across
classes (global) and pruning every layer by the same fraction (local). Each module has one job:
``config`` (what is run), ``data`` (the digits task), ``models`` (the two networks and their uniform
narrow twins), ``train`` (plain training and evaluation), ``tasks`` (the units of work run in worker
processes), ``histograms`` (the importance figure) and ``report`` (table, JSON, Markdown, plots).
"""

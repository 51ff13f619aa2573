"""benchmarks/isomorphic_vs_global.py: the pieces that decide its numbers and its table, checked fast.

The benchmark itself takes minutes (``--quick``) to half an hour; here: the data split, the uniform
baseline's MAC matching, the aggregation/formatting of the table, and bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from evidence.config import Settings  # noqa: E402
from evidence.data import split_indices  # noqa: E402
from evidence.histograms import class_labels  # noqa: E402
from evidence.report import UNIFORM, accuracy_table, aggregate, fmt, width_table  # noqa: E402


def test_split_is_stratified_disjoint_and_fixed():
    labels = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])  # digits' class sizes
    train, val = split_indices(labels)
    assert len(train) + len(val) == len(labels) and not set(train) & set(val)
    assert len(val) == 450
    counts = np.bincount(labels[val], minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # a quarter of every class
    again_train, _ = split_indices(labels)
    assert np.array_equal(train, again_train)


def test_uniform_vit_lands_on_the_budget():
    from evidence.models import SETUPS, macs_of, uniform_kwargs

    setup = SETUPS["vit"]
    dense = macs_of(setup)
    kwargs = uniform_kwargs(setup, 0.5 * dense)
    assert kwargs["embed_dim"] % setup.kwargs["num_heads"] == 0 and kwargs["embed_dim"] < setup.kwargs["embed_dim"]
    reached = macs_of(setup, **kwargs)
    assert abs(reached / dense - 0.5) < 0.01, reached / dense


def _row(kind, seed, **kw):
    base = {"kind": kind, "model": "vit", "seed": seed, "budget": None, "ranking": None, "importance": None}
    base["id"] = f"{kind}-{seed}-{kw.get('ranking')}-{kw.get('budget')}"
    return base | kw


def _classes(kept_e, kept_m):
    return [{"kind": "embedding", "groups": 1, "width_before": 100, "width_after": kept_e},
            {"kind": "hidden", "groups": 2, "width_before": 200, "width_after": kept_m}]


def test_table_aggregates_seeds_marks_the_best_and_reports_widths():
    rows = [_row("dense", s, macs=1000, val_top1=v) for s, v in ((0, 96.0), (1, 98.0))]
    for s, (p, f) in enumerate(((50.0, 90.0), (60.0, 92.0))):
        rows.append(_row("prune", s, budget=0.5, ranking="isomorphic", importance="taylor", macs=500 + s, pruned_top1=p,
                         finetuned_top1=f, classes=_classes(80, 100)))
        rows.append(_row("prune", s, budget=0.5, ranking="global", importance="taylor", macs=498, pruned_top1=p - 20,
                         finetuned_top1=f - 5, classes=_classes(100, 40)))
        rows.append(_row("scratch", s, budget=0.5, macs=505, val_top1=80.0 + s))
    settings = Settings(seeds=[0, 1], budgets=[0.5], models=["vit"], rankings=["isomorphic", "global"], importances=["taylor"])
    cells, dense = aggregate(rows)
    assert {c.method for c in cells} == {"isomorphic · taylor", "global · taylor", UNIFORM}
    table = accuracy_table(cells, dense, settings, {"vit": "ViT"})
    lines = table.splitlines()
    assert lines[2] == "| ViT | 100 % | dense (teacher) | 0.00 | 100.0 | — | 97.0 ± 1.4 |"
    assert lines[3] == "| ViT | 50 % | isomorphic · taylor | 0.00 | 50.0 | 55.0 ± 7.1 | **91.0 ± 1.4** |"
    assert lines[4] == "| ViT | 50 % | global · taylor | 0.00 | 49.8 | 35.0 ± 7.1 | 86.0 ± 1.4 |"
    assert lines[5] == f"| ViT | 50 % | {UNIFORM} | 0.00 | 50.5 | — | 80.5 ± 0.7 |"
    widths = width_table(cells, settings, {"vit": "legend"}, {"vit": "ViT"})
    assert "| 50 % | isomorphic · taylor | 80 | 50 |" in widths and "| 50 % | global · taylor | 100 | 20 |" in widths


def test_formatting_and_labels():
    assert fmt([]) == "—" and fmt([97.123]) == "97.1" and fmt([1.0, 3.0]) == "2.0 ± 1.4"
    assert class_labels(["embedding", "heads", "head_dim", "hidden"]) == ["E", "H", "D", "M"]
    assert class_labels(["hidden", "hidden", "embedding"]) == ["M1", "M2", "E"]


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds must be in 1..20"),
    (["--budgets", "1.5"], "--budgets are fractions"),
    (["--models", "vgg"], "--models: unknown vgg"),
    (["--finetune-epochs", "0"], "--finetune-epochs must be ≥ 1"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    import isomorphic_vs_global

    assert isomorphic_vs_global.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1

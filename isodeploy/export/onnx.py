"""Export a loaded model to a clean, checked ONNX file with a dynamic batch dimension.

Two exporters: ``torchscript`` (``torch.onnx.export(dynamo=False)``, deprecated in torch but still
shipped) and ``dynamo`` (the torch.export-based exporter, torch's default). Both give the same numbers
on every family we support; the default is chosen by measurement (docs/export.md): torchscript exports
1.5–6x faster and its graphs run as fast or faster on onnxruntime CPU; when it fails or is missing the
export falls back to dynamo and says so in the report.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError

MIN_OPSET = 17  # LayerNormalization is one node from opset 17 on
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"
INPUT_NAME = "input"
MAX_DYNAMIC_BATCH = 4096


@dataclass
class ExportReport:
    """What ``export_onnx`` wrote and how; ``asdict`` gives the ``--json`` payload."""

    path: str
    exporter: str
    opset: int
    seconds: float
    input_name: str
    output_names: list[str]
    metadata: dict[str, str]
    input_shape: list[int | str] = field(default_factory=list)
    output_shapes: list[list[int | str]] = field(default_factory=list)
    external_data: bool = False
    size_bytes: int = 0
    nodes: int = 0
    op_counts: dict[str, int] = field(default_factory=dict)
    #: why the default exporter was not the one used (None when it was)
    fallback: str | None = None
    precision: str = "fp32"


def check_opset(opset: int) -> None:
    """Opsets below 17 split LayerNorm into six ops that TensorRT and our FP16 block list can't see whole."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset < MIN_OPSET:
        raise IsodeployError(f"--opset {opset} is below {MIN_OPSET}: LayerNormalization needs opset {MIN_OPSET}+; pass --opset {MIN_OPSET} or higher")
    if opset > newest:
        raise IsodeployError(f"--opset {opset} is newer than this onnx package supports ({newest}); pass --opset {MIN_OPSET}..{newest}")


def spec_hash(loaded: Any) -> str | None:
    """sha256 of the isodeploy spec for a model from an isodeploy folder (pruned); None for dense models."""
    folder = getattr(loaded, "folder", None)
    if folder is None:
        return None
    from isodeploy.zoo import SPEC_FILE

    spec = Path(folder) / SPEC_FILE
    return "sha256:" + hashlib.sha256(spec.read_bytes()).hexdigest() if spec.is_file() else None


def build_metadata(loaded: Any, exporter: str, opset: int) -> dict[str, Any]:
    """The provenance later stages read back: source model, input size, normalisation, spec hash."""
    from isodeploy.core.version import __version__

    from isodeploy.core.provenance import source_record

    return {
        "version": __version__,
        # by name and hash, never a local path: the file travels, and must not choose what verify loads
        **source_record(loaded),
        "timm_name": loaded.timm_name,
        "spec_hash": spec_hash(loaded),
        "input_size": list(loaded.input_size),
        "mean": list(loaded.mean),
        "std": list(loaded.std),
        "num_classes": int(loaded.num_classes),
        "create_kwargs": {k: v for k, v in loaded.create_kwargs.items() if isinstance(v, (int, float, str, bool, list, tuple))},
        "exporter": exporter,
        "opset": opset,
        "precision": "fp32",
    }


def _output_names(model: Any, example: Any) -> list[str]:
    """``logits`` for the usual single output; ``output_<i>`` when a model returns several tensors."""
    import torch

    with torch.no_grad():
        out = model(example)
    count = len(out) if isinstance(out, (tuple, list)) else 1
    return ["logits"] if count == 1 else [f"output_{i}" for i in range(count)]


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters print progress and tracer warnings that mean nothing to our users; keep the console clean."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _run_exporter(exporter: str, model: Any, example: Any, path: Path, opset: int, outputs: list[str], dynamic: bool) -> None:
    import torch

    if exporter == "torchscript":
        axes = {n: {0: "batch"} for n in [INPUT_NAME, *outputs]} if dynamic else None
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
        return
    shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},) if dynamic else None
    program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                                output_names=outputs, dynamic_shapes=shapes, optimize=True)
    program.save(str(path), external_data=True)


def _export_raw(exporter: str | None, model: Any, example: Any, path: Path, opset: int, outputs: list[str], dynamic: bool) -> tuple[str, str | None]:
    """Run the chosen exporter; with no choice, torchscript then dynamo. Returns (used, fallback reason)."""
    import torch

    order = [exporter] if exporter else [DEFAULT_EXPORTER, *[e for e in EXPORTERS if e != DEFAULT_EXPORTER]]
    errors: list[str] = []
    for name in order:
        try:
            with _quiet_exporter(), torch.no_grad():
                _run_exporter(name, model, example, path, opset, outputs, dynamic)
            return name, ("; ".join(errors) or None)
        except IsodeployError:
            raise
        except Exception as exc:  # exporters raise many types; the message is what users need
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            errors.append(f"{name} exporter failed ({type(exc).__name__}: {text})")
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()
    hint = "" if exporter is None else f"; try --exporter {'dynamo' if exporter == 'torchscript' else 'torchscript'}"
    raise IsodeployError(f"ONNX export failed: {'; '.join(errors)}{hint}")


def needs_newer_opset(model: Any, opset: int) -> tuple[int, str] | None:
    """The opset an exported graph really needs when the exporter wrote a newer op form than it declared
    (torch's TorchScript exporter writes ``Split(num_outputs=…)``, an opset-18 attribute, for RoPE
    ViTs at opset 17: the checker refuses it). None when the declared opset is right."""
    if opset < 18 and any(n.op_type == "Split" and any(a.name == "num_outputs" for a in n.attribute) for n in model.graph.node):
        return 18, "Split with num_outputs (opset 18)"
    return None


def export_onnx(
    loaded: Any,
    out_path: Path,
    *,
    opset: int = MIN_OPSET,
    exporter: str | None = None,
    dynamic_batch: bool = True,
    fold_constants: bool = True,
    external_threshold: int | None = None,
) -> ExportReport:
    """Export ``loaded`` (a :class:`~isodeploy.zoo.LoadedModel`) to ``out_path``; nothing is left half-written.

    Steps: export → graphsurgeon clean-up (fold constants, remove dead nodes, toposort) → metadata →
    ``onnx.checker`` + strict shape inference → atomic write (weights in ``<out>.data`` over 2 GB).
    """
    from isodeploy.export.onnx_clean import clean_graph
    from isodeploy.core.onnx_io import PROTOBUF_LIMIT, load_onnx, save_onnx_atomic, set_metadata, tensor_shape

    if exporter is not None and exporter not in EXPORTERS:
        raise IsodeployError(f"unknown exporter '{exporter}': choose {' or '.join(EXPORTERS)}")
    check_opset(opset)
    from isodeploy.core.cleanup import clean_target_temps
    from isodeploy.core.safe_write import check_target, make_temp_dir, remove_quietly

    out_path = Path(out_path)
    if out_path.is_dir() and not out_path.is_symlink():
        raise IsodeployError(f"output '{out_path}' is a folder; pass a file name such as {out_path / 'model.onnx'}")
    check_target(out_path, f"output '{out_path}'")  # before the export: never onto a link, a FIFO or a device
    out_path.parent.mkdir(parents=True, exist_ok=True)
    clean_target_temps(out_path)  # what a killed export of this very file left
    model = loaded.model.eval()
    # Batch 2, not 1: exporters specialise size-1 dims, which would pin the batch (docs/export.md).
    example = loaded.example_input(2 if dynamic_batch else 1)
    outputs = _output_names(model, example)
    start = time.perf_counter()
    work = make_temp_dir(out_path.parent, f"{out_path.name}.raw")
    try:
        used, fallback, opset, exported = _export_at_needed_opset(exporter, model, example, work / "raw.onnx", opset, outputs, dynamic_batch)
        onnx_model = clean_graph(exported, fold=fold_constants)
        meta = build_metadata(loaded, used, opset)
        set_metadata(onnx_model, meta)
        origin = meta.get("source_model") or f"{meta['timm_name']} pruned in '{meta.get('source_folder')}'"
        onnx_model.doc_string = f"{origin} exported by isodeploy {meta['version']} ({used}, opset {opset})"
        external = save_onnx_atomic(onnx_model, out_path, external_threshold=external_threshold or PROTOBUF_LIMIT)
    finally:
        remove_quietly(work)
    seconds = time.perf_counter() - start
    written = load_onnx(out_path, load_weights=False)
    return ExportReport(
        path=str(out_path),
        exporter=used,
        opset=opset,
        seconds=round(seconds, 3),
        input_name=written.graph.input[0].name,
        output_names=[o.name for o in written.graph.output],
        metadata={p.key: p.value for p in written.metadata_props},
        input_shape=tensor_shape(written.graph.input[0]),
        output_shapes=[tensor_shape(o) for o in written.graph.output],
        external_data=external,
        size_bytes=out_path.stat().st_size + (out_path.with_name(out_path.name + ".data").stat().st_size if external else 0),
        nodes=len(written.graph.node),
        op_counts=dict(sorted(Counter(n.op_type for n in written.graph.node).items())),
        fallback=fallback,
    )


def opset_of(model: Any) -> int:
    """The default-domain opset of an ONNX model."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def describe(report: ExportReport) -> str:
    """One human line for the CLI."""
    size = report.size_bytes / 2**20
    extra = " (weights in .data side file)" if report.external_data else ""
    return (f"wrote {report.path}: {report.nodes} nodes, {size:.1f} MiB{extra}, {report.exporter} exporter, "
            f"opset {report.opset}, input {report.input_name} {json.dumps(report.input_shape)}, {report.seconds:.1f} s")


def _export_at_needed_opset(exporter: str | None, model: Any, example: Any, raw: Path, opset: int, outputs: list[str],
                            dynamic: bool) -> tuple[str, str | None, int, Any]:
    """Export to ``raw`` and load it; at the default opset, export again at the opset the graph really needs
    (a newer op form under the old number); at an opset the user chose, say which one to pass.
    Returns (exporter used, fallback reason, opset, the loaded model)."""
    from isodeploy.core.onnx_io import load_onnx

    used, fallback = _export_raw(exporter, model, example, raw, opset, outputs, dynamic)
    exported = load_onnx(raw)
    needed = needs_newer_opset(exported, opset)
    if needed is not None:
        if opset != MIN_OPSET:
            raise IsodeployError(f"the exporter wrote {needed[1]} at --opset {opset}; pass --opset {needed[0]}")
        opset = needed[0]
        used, fallback = _export_raw(exporter, model, example, raw, opset, outputs, dynamic)
        fallback = "; ".join(filter(None, [fallback, f"exported at opset {opset}: the graph has {needed[1]}"]))
        exported = load_onnx(raw)
    return used, fallback, opset, exported


def export_for_timing(model: Any, example: Any, path: Path, *, fold_constants: bool = True) -> int:
    """Export ``model`` at the fixed shape of ``example`` to ``path`` the way :func:`export_onnx` does
    (same exporter order, opset fallback and clean-up), without metadata or checks: for the many short-lived
    variants a latency table times. Returns the opset used."""
    from isodeploy.core.onnx_io import save_onnx_atomic
    from isodeploy.export.onnx_clean import clean_graph

    path = Path(path)
    model = model.eval()
    _, _, opset, exported = _export_at_needed_opset(None, model, example, path.with_name(path.stem + ".raw.onnx"), MIN_OPSET,
                                                   _output_names(model, example), False)
    save_onnx_atomic(clean_graph(exported, fold=fold_constants), path)
    return opset

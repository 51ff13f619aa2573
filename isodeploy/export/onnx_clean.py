"""Tidy an exported graph with onnx-graphsurgeon: fold constants, drop dead nodes, sort topologically.

Exporters leave shape arithmetic on constant weights, ``Identity`` chains and unused initializers
behind; TensorRT's parser and the FP16 converter both work better on the folded graph (the same
clean-up as ``polygraphy surgeon sanitize --fold-constants``).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any


def clean_graph(model: Any, *, fold: bool = True) -> Any:
    """Return a folded, dead-node-free, topologically sorted copy of ``model`` (metadata kept)."""
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(model)
    logger = gs.logger.G_LOGGER
    old_severity = logger.severity
    # graphsurgeon warns about every constant it cannot fold (batch-dependent shapes): expected here.
    logger.severity = logger.ERROR
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if fold:
                graph.fold_constants(error_ok=True)
            graph.cleanup(remove_unused_graph_inputs=False).toposort()
    finally:
        logger.severity = old_severity
    cleaned = gs.export_onnx(graph, do_type_check=True)
    cleaned.ir_version = model.ir_version
    del cleaned.metadata_props[:]
    cleaned.metadata_props.extend(model.metadata_props)
    cleaned.producer_name = model.producer_name
    cleaned.producer_version = model.producer_version
    return cleaned


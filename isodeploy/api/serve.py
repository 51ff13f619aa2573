"""What ``isodeploy triton-repo ARTIFACT --name NAME -o REPO`` does, as one Python call: :func:`triton_repo`.

Writes a Triton model repository entry for a TensorRT engine (``.plan``) or an ``.onnx``, and with
``check=True`` loads it in a real ``tritonserver`` and sends it one request. Re-exported as they
are: :func:`write_triton_repo` (from :mod:`isodeploy.serve.triton_repo`, the write alone) and
:class:`TritonRepoReport`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from isodeploy.api.files import check_report_paths, write_json_atomic
from isodeploy.core.errors import IsodeployError
from isodeploy.serve.triton_repo import TritonRepoReport, write_triton_repo

__all__ = ["TritonRepoReport", "parse_batch_sizes", "triton_repo", "write_triton_repo"]


def parse_batch_sizes(text: str | Sequence[int] | None) -> list[int] | None:
    """``'8,16'`` (the CLI's ``--preferred-batch``) or a list of ints → a list of ints; empty → None."""
    if not text:
        return None
    if not isinstance(text, str):
        return [int(size) for size in text]
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise IsodeployError(f"--preferred-batch takes comma-separated integers like 8,16, got '{text}'") from exc


def triton_repo(artifact: str | Path, name: str, repo: str | Path, *, max_batch: int | None = None, device: str = "auto",
                preferred_batch: str | Sequence[int] | None = None, max_queue_delay_us: int = 100, instances: int = 1,
                static_batch: bool = False, force: bool = False, check: bool = False, server: str | Path | None = None,
                backend_dir: str | Path | None = None, json_path: str | Path | None = None,
                on_written: Callable[[TritonRepoReport], None] | None = None) -> TritonRepoReport:
    """Write ``repo/name/config.pbtxt`` and ``repo/name/1/model.plan|model.onnx`` (plus the engine's metadata).

    The defaults are the ``isodeploy triton-repo`` command's; ``max_batch`` defaults to the engine
    profile's max (ONNX: 64), ``preferred_batch`` to the opt and max batch. ``check=True`` finds the
    server (``server``, else ``$ISODEPLOY_TRITONSERVER``, else PATH) before writing anything, then
    loads the written model and sends it one request; a failed check raises (exit code 1) and the
    verdict is in the report's ``check``. ``server``/``backend_dir`` without ``check`` are refused.
    ``on_written`` is called with the report once the files are written, before the check (the CLI
    prints them there). ``json_path`` gets the report, also when the check fails.
    """
    from isodeploy.serve.triton_server import find_backend_dir, find_server

    if not check and (server is not None or backend_dir is not None):
        raise IsodeployError(f"{'--server' if server is not None else '--backend-dir'} is used only by --check; "
                             "add --check (load the model in that server) or drop it")
    artifact, repo = Path(artifact), Path(repo)
    check_report_paths({"--json": json_path}, inputs=[artifact], folders=[(repo, (name,))])
    binary = find_server(server) if check else None  # before writing anything: no server is bad input (exit 2)
    backends = find_backend_dir(backend_dir) if check else None
    report = write_triton_repo(artifact, name, repo, max_batch=max_batch, device=device,
                               preferred_batch_sizes=parse_batch_sizes(preferred_batch), max_queue_delay_us=max_queue_delay_us,
                               instance_count=instances, force=force, dynamic_batching=not static_batch)
    if on_written is not None:
        on_written(report)
    try:
        if binary is not None:
            from isodeploy.serve.triton_check import check_written_repo

            check_written_repo(report, binary, backend_dir=backends)
    finally:
        if json_path:
            write_json_atomic(Path(json_path), report)
    return report

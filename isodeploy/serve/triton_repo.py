"""Triton model repositories for a TensorRT plan or an ONNX file: ``REPO/NAME/config.pbtxt`` + ``REPO/NAME/1/``.

Everything in the config is read from the artifact: for a plan, from its ``.plan.json`` metadata (I/O
names, dtypes, shapes and the batch profile), so no TensorRT or GPU is needed to write it; for an ONNX,
from the graph. The model folder is assembled in a hidden staging folder inside REPO, checked against the
rules Triton's loader applies (:mod:`isodeploy.serve.triton_validate`) and renamed into place, so Triton
(which may be polling REPO) never sees half a model or one it would refuse. Only regular files inside the
artifact's folder are copied, and a plan must match the size and hash its metadata recorded.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from isodeploy.core.cleanup import clean_stale_temps
from isodeploy.core.safe_write import make_temp_dir
from isodeploy.core.errors import IsodeployError
from isodeploy.serve.triton_validate import repo_problems, validate_model_dir

TRITON_TYPES = {
    "float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "float64": "TYPE_FP64",
    "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64",
    "bool": "TYPE_BOOL", "string": "TYPE_STRING",
}
PLATFORMS = {".plan": "tensorrt_plan", ".onnx": "onnxruntime_onnx"}
DEVICES = ("auto", "gpu", "cpu")
DEFAULT_ONNX_MAX_BATCH = 64
VERSION = "1"
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # used with fullmatch: '$' would let a final "\n" in


@dataclass
class TritonTensor:
    name: str
    data_type: str  # TYPE_FP32, ...
    dims: list[int]  # without the batch dim when max_batch_size > 0; -1 for a variable dim
    reshape: list[int] | None = None  # set for per-item scalars: dims [1] reshaped to []


@dataclass
class TritonConfig:
    """The fields isodeploy writes into config.pbtxt (a subset of Triton's ModelConfig)."""

    name: str
    platform: str
    max_batch_size: int
    inputs: list[TritonTensor]
    outputs: list[TritonTensor]
    preferred_batch_sizes: list[int] = field(default_factory=list)
    max_queue_delay_us: int = 100
    instance_kind: str = "KIND_GPU"
    instance_count: int = 1
    dynamic_batching: bool = True  # False: Triton's default scheduler runs each request as the client batched it

    def render(self) -> str:
        """Protobuf text format, as Triton reads it."""
        lines = [f"name: {_quote(self.name)}", f"platform: {_quote(self.platform)}", f"max_batch_size: {self.max_batch_size}"]
        for key, tensors in (("input", self.inputs), ("output", self.outputs)):
            lines.append(f"{key} [")
            lines.append(",\n".join(_tensor_text(t) for t in tensors))
            lines.append("]")
        if self.max_batch_size > 0 and self.dynamic_batching:
            lines += ["dynamic_batching {",
                      f"  preferred_batch_size: [ {', '.join(map(str, self.preferred_batch_sizes))} ]",
                      f"  max_queue_delay_microseconds: {self.max_queue_delay_us}", "}"]
        lines += ["instance_group [", "  {", f"    count: {self.instance_count}", f"    kind: {self.instance_kind}", "  }", "]"]
        return "\n".join(lines) + "\n"


@dataclass
class TritonRepoReport:
    repo: str
    model_dir: str
    platform: str
    max_batch_size: int
    instance_kind: str
    files: list[str]
    unchanged: bool  # the folder already held exactly this model
    serve_command: str
    config: dict
    warnings: list[str] = field(default_factory=list)  # e.g. other model folders in REPO that Triton would refuse
    check: dict | None = None  # set by --check: the real server's verdict (TritonCheckReport)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor_text(t: TritonTensor) -> str:
    lines = ["  {", f"    name: {_quote(t.name)}", f"    data_type: {t.data_type}", f"    dims: [ {', '.join(map(str, t.dims))} ]"]
    if t.reshape is not None:
        lines.append(f"    reshape: {{ shape: [ {', '.join(map(str, t.reshape))} ] }}")
    return "\n".join(lines + ["  }"])


def check_model_name(name: str) -> None:
    """Triton model names are folder names and URL path segments: keep to a safe alphabet."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise IsodeployError(f"Triton model name {name!r} has illegal characters: use 1-128 letters, digits, '_', '-' "
                             f"or '.', not starting with '.' or '-'")


def _triton_type(dtype: str, tensor: str) -> str:
    if dtype not in TRITON_TYPES:
        raise IsodeployError(f"tensor '{tensor}' has type {dtype}, which Triton cannot serve")
    return TRITON_TYPES[dtype]


def _tensors(items: list[tuple[str, str, list[int]]], batching: bool) -> list[TritonTensor]:
    out = []
    for name, dtype, shape in items:
        dims = list(shape[1:]) if batching else list(shape)
        reshape = None
        if not dims:  # a per-item scalar (e.g. shape [B]): Triton wants dims [1] reshaped to []
            dims, reshape = [1], []
        out.append(TritonTensor(name, _triton_type(dtype, name), dims, reshape))
    return out


def _preferred(requested: list[int] | None, defaults: list[int], max_batch: int) -> list[int]:
    sizes = sorted(set(requested if requested else [min(d, max_batch) for d in defaults]))
    bad = [s for s in sizes if not 1 <= s <= max_batch]
    if bad:
        raise IsodeployError(f"preferred batch sizes {bad} are outside 1..{max_batch} (the model's max batch)")
    return sizes


def _instance_kind(device: str, platform: str) -> str:
    if device not in DEVICES:
        raise IsodeployError(f"unknown --device '{device}': choose one of {', '.join(DEVICES)}")
    if platform == "tensorrt_plan":
        if device == "cpu":
            raise IsodeployError("a TensorRT engine runs only on a GPU: drop --device cpu (or serve the .onnx instead)")
        return "KIND_GPU"
    return "KIND_GPU" if device == "gpu" else "KIND_CPU"


def _check_plan_matches_meta(plan_path: Path, meta) -> None:
    """The metadata describes one exact file: a replaced or truncated engine must not ship under it."""
    size = plan_path.stat().st_size
    if size != meta.plan_bytes:
        raise IsodeployError(f"'{plan_path}' is {size} bytes but its .plan.json records {meta.plan_bytes}: the engine "
                             f"was replaced or damaged; rebuild it with 'isodeploy build-engine'")
    if _digest(plan_path) != meta.plan_sha256:
        raise IsodeployError(f"'{plan_path}' does not match the sha256 in its .plan.json: the engine was replaced or "
                             f"damaged; rebuild it with 'isodeploy build-engine'")


def config_for_plan(plan_path: Path, name: str, *, max_batch: int | None = None, device: str = "auto",
                    preferred_batch_sizes: list[int] | None = None, max_queue_delay_us: int = 100,
                    instance_count: int = 1, dynamic_batching: bool = True):
    """A ``tensorrt_plan`` config from the engine's metadata; returns (config, metadata)."""
    from isodeploy.runtime.trt.meta import read_engine_meta

    meta = read_engine_meta(plan_path)
    _check_plan_matches_meta(plan_path, meta)
    kind = _instance_kind(device, "tensorrt_plan")
    batching = all(t.shape and t.shape[0] == -1 for t in meta.inputs + meta.outputs)
    if batching:
        if meta.min_batch > 1:
            raise IsodeployError(f"'{plan_path}' has a profile starting at batch {meta.min_batch}; Triton sends batches "
                                 f"from 1: rebuild with 'isodeploy build-engine --min-batch 1'")
        limit = meta.max_batch
        if max_batch is not None and not 1 <= max_batch <= limit:
            raise IsodeployError(f"--max-batch {max_batch} is outside 1..{limit} (the engine's profile): "
                                 f"rebuild with 'isodeploy build-engine --max-batch {max_batch}'")
        mbs = max_batch or limit
        preferred = _preferred(preferred_batch_sizes, [meta.opt_batch, mbs], mbs) if dynamic_batching else []
    else:
        if max_batch:
            raise IsodeployError(f"'{plan_path}' was built without a dynamic batch dim, so --max-batch cannot apply")
        mbs, preferred = 0, []
    cfg = TritonConfig(name, "tensorrt_plan", mbs,
                       _tensors([(t.name, t.dtype, t.shape) for t in meta.inputs], batching),
                       _tensors([(t.name, t.dtype, t.shape) for t in meta.outputs], batching),
                       preferred, max_queue_delay_us, kind, instance_count, dynamic_batching and batching)
    return cfg, meta


def config_for_onnx(onnx_path: Path, name: str, *, max_batch: int | None = None, device: str = "auto",
                    preferred_batch_sizes: list[int] | None = None, max_queue_delay_us: int = 100,
                    instance_count: int = 1, dynamic_batching: bool = True):
    """An ``onnxruntime_onnx`` config from the ONNX graph; returns (config, OnnxIO)."""
    from isodeploy.export.trt.onnx_prep import read_onnx_io

    io = read_onnx_io(onnx_path)
    kind = _instance_kind(device, "onnxruntime_onnx")
    batching = all(t.batch_dynamic for t in io.inputs + io.outputs)
    if batching:
        mbs = DEFAULT_ONNX_MAX_BATCH if max_batch is None else max_batch
        if mbs < 1:
            raise IsodeployError(f"--max-batch must be at least 1, got {mbs}")
        preferred = _preferred(preferred_batch_sizes, [8, mbs], mbs) if dynamic_batching else []
    else:
        if max_batch:
            raise IsodeployError(f"'{onnx_path}' has a fixed batch dim, so --max-batch cannot apply: "
                                 f"re-export it with a dynamic batch ('isodeploy export')")
        mbs, preferred = 0, []
    cfg = TritonConfig(name, "onnxruntime_onnx", mbs,
                       _tensors([(t.name, t.dtype, t.shape) for t in io.inputs], batching),
                       _tensors([(t.name, t.dtype, t.shape) for t in io.outputs], batching),
                       preferred, max_queue_delay_us, kind, instance_count, dynamic_batching and batching)
    return cfg, io


def _model_files(artifact: Path, platform: str, meta_or_io) -> dict[str, Path | str]:
    """Relative path inside the model folder → source file (Path) or text (str)."""
    version = Path(VERSION)
    if platform == "tensorrt_plan":
        from isodeploy.runtime.trt.meta import write_meta_text

        meta = meta_or_io
        meta.plan = "model.plan"
        return {str(version / "model.plan"): artifact, str(version / "model.plan.json"): write_meta_text(meta)}
    files: dict[str, Path | str] = {str(version / "model.onnx"): artifact}
    for location in meta_or_io.external_data:  # weights saved beside the ONNX must travel with it
        rel = Path(location)
        if rel.is_absolute() or ".." in rel.parts:
            raise IsodeployError(f"'{artifact}' points to external data '{location}' outside its folder; re-export it")
        source = artifact.parent / rel
        linked = [artifact.parent / Path(*rel.parts[:i]) for i in range(1, len(rel.parts) + 1)]
        link = next((p for p in linked if p.is_symlink()), None)
        if link is not None:  # a link could point at any readable file; onnx and onnxruntime refuse it too
            raise IsodeployError(f"external data '{location}' of '{artifact}' is a symbolic link ('{link}'): isodeploy "
                                 f"copies only regular files from the model's folder; put the file itself there")
        if not source.is_file():
            raise IsodeployError(f"external data file '{source}' of '{artifact}' is missing")
        files[str(version / rel)] = source
    return files


def _copy_no_follow(src: Path, dest: Path) -> None:
    """Copy a regular file, refusing one that became a symbolic link after it was checked."""
    try:
        fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise IsodeployError(f"cannot read '{src}' ({exc.strerror}); it must be a regular file, not a link") from exc
    with os.fdopen(fd, "rb") as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _digest(item: Path | str) -> str:
    digest = hashlib.sha256()
    if isinstance(item, str):
        digest.update(item.encode())
    else:
        with open(item, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _existing_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _digest(p) for p in folder.rglob("*") if p.is_file()}


def serve_command(repo: Path, gpu: bool) -> str:
    """A shell line to serve the repository with the official container (quoted for any path)."""
    gpus = "--gpus all " if gpu else ""
    volume = shlex.quote(f"{Path(repo).resolve()}:/models")
    return (f"docker run --rm {gpus}-p 8000:8000 -p 8001:8001 -p 8002:8002 -v {volume} "
            f"'nvcr.io/nvidia/tritonserver:<yy.mm>-py3' tritonserver --model-repository=/models")


def write_triton_repo(artifact: Path, name: str, repo: Path, *, max_batch: int | None = None, device: str = "auto",
                      preferred_batch_sizes: list[int] | None = None, max_queue_delay_us: int = 100,
                      instance_count: int = 1, force: bool = False, dynamic_batching: bool = True) -> TritonRepoReport:
    """Write ``repo/name`` for a ``.plan`` or ``.onnx``; refuse to overwrite a different model unless ``force``.

    ``dynamic_batching=False`` (``--static-batch``) leaves the dynamic batcher out: each request runs as sent.
    """
    artifact, repo = Path(artifact), Path(repo)
    check_model_name(name)
    platform = PLATFORMS.get(artifact.suffix)
    if platform is None:
        raise IsodeployError(f"'{artifact}' is neither a .plan (TensorRT engine) nor an .onnx file")
    if not artifact.is_file():
        raise IsodeployError(f"'{artifact}' does not exist")
    if instance_count < 1 or max_queue_delay_us < 0:
        raise IsodeployError("--instances must be at least 1 and --max-queue-delay-us at least 0")
    if not dynamic_batching and preferred_batch_sizes:
        raise IsodeployError("--preferred-batch configures the dynamic batcher, which --static-batch turns off: drop one")
    make = config_for_plan if platform == "tensorrt_plan" else config_for_onnx
    cfg, meta_or_io = make(artifact, name, max_batch=max_batch, device=device, preferred_batch_sizes=preferred_batch_sizes,
                           max_queue_delay_us=max_queue_delay_us, instance_count=instance_count,
                           dynamic_batching=dynamic_batching)
    files: dict[str, Path | str] = {"config.pbtxt": cfg.render(), **_model_files(artifact, platform, meta_or_io)}
    if repo.exists() and not repo.is_dir():
        raise IsodeployError(f"Triton repository '{repo}' exists and is not a folder")
    target = repo / name
    report = TritonRepoReport(str(repo), str(target), platform, cfg.max_batch_size, cfg.instance_kind, sorted(files),
                              False, serve_command(repo, cfg.instance_kind == "KIND_GPU"), asdict(cfg))
    report.warnings = [f"'{repo / other}' would be refused by Triton: {problems[0]}"
                       for other, problems in repo_problems(repo, skip=name).items()]
    if target.exists():
        if _existing_digests(target) == {rel: _digest(src) for rel, src in files.items()}:
            report.unchanged = True
            return report
        if not force:
            raise IsodeployError(f"'{target}' already holds a different model: choose another --name, remove it, or pass --force")
    repo.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(repo, legacy=False)  # staging and backup folders of killed runs (ours by name and dead PID)
    staging = make_temp_dir(repo, name)  # PID-tagged: a killed run's is recognised and removed later
    os.chmod(staging, 0o755)  # the server may run as another user
    try:
        for rel, src in files.items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, str):
                dest.write_text(src)
            else:
                _copy_no_follow(src, dest)
        validate_model_dir(staging, name)  # what Triton refuses never reaches the repository
        _swap_in(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _swap_in(staging: Path, target: Path) -> None:
    """Rename the staged folder into place; with an old one there, move it aside first, then delete it."""
    if not target.exists():
        os.rename(staging, target)
        return
    old = make_temp_dir(target.parent, f"{target.name}.old")
    os.rename(target, old / "model")
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old / "model", target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)

"""Check a Triton model folder the way Triton's loader does, before anyone ships it.

The protobuf schema accepts configs that the server then refuses at load time (a folder named unlike the
model, no version folder, a preferred batch above ``max_batch_size``, zero dims, a reshape of another size,
unknown enum values). Each rule here mirrors a refusal that Triton 2.51 logs, with its wording in the
comment, so a broken repository fails with one ``triton-repo`` line instead of at deploy time. The real server
runs the same cases in ``tests/test_triton_server.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

from isodeploy.core.errors import IsodeployError
from isodeploy.serve.pbtxt import Ident, Message, field_value, parse_pbtxt

DATA_TYPES = {"TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16",
              "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"}
KINDS = {"KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"}
DEFAULT_FILES = {"tensorrt_plan": "model.plan", "onnxruntime_onnx": "model.onnx", "pytorch_libtorch": "model.pt",
                 "tensorflow_savedmodel": "model.savedmodel", "tensorflow_graphdef": "model.graphdef"}
BACKEND_PLATFORMS = {"tensorrt": "tensorrt_plan", "onnxruntime": "onnxruntime_onnx"}
# Top-level ModelConfig fields (model_config.proto); Triton's text parser refuses any other name.
CONFIG_FIELDS = {"name", "platform", "backend", "runtime", "version_policy", "max_batch_size", "input", "output",
                 "batch_input", "batch_output", "optimization", "dynamic_batching", "sequence_batching",
                 "ensemble_scheduling", "instance_group", "default_model_filename", "cc_model_filenames",
                 "metric_tags", "parameters", "model_warmup", "model_operations", "model_transaction_policy",
                 "model_repository_agents", "response_cache"}
TENSOR_FIELDS = {"name", "data_type", "format", "dims", "reshape", "is_shape_tensor", "allow_ragged_batch",
                 "optional", "label_filename", "is_non_linear_format_io"}


def config_problems(cfg: Message, folder_name: str) -> list[str]:
    """What Triton refuses in a parsed config.pbtxt, as short sentences (empty when it would load)."""
    problems = [f"unknown field '{k}' (Triton's parser refuses it)" for k in cfg if k not in CONFIG_FIELDS]
    name = field_value(cfg, "name", "")
    if name and name != folder_name:  # "unexpected directory name 'X' for model 'Y', directory name must equal model name"
        problems.append(f"the folder is named '{folder_name}' but config.pbtxt names the model '{name}': "
                        f"Triton needs them equal")
    platform, backend = field_value(cfg, "platform", ""), field_value(cfg, "backend", "")
    if not platform and not backend:
        problems.append("config.pbtxt sets neither 'platform' nor 'backend'")
    mbs = field_value(cfg, "max_batch_size", 0)
    if not isinstance(mbs, int) or mbs < 0:
        problems.append(f"max_batch_size must be an integer >= 0, got {mbs!r}")
        mbs = 0
    for dyn in cfg.get("dynamic_batching", []):
        for size in dyn.get("preferred_batch_size", []):  # "dynamic batching preferred size must be positive"
            if not isinstance(size, int) or size < 1:
                problems.append(f"preferred batch size {size!r} must be positive")
            elif size > mbs:  # "dynamic batching preferred size must be <= max batch size"
                problems.append(f"preferred batch size {size} is above max_batch_size {mbs}")
    for key in ("input", "output"):
        tensors = cfg.get(key, [])
        if key == "output" and not tensors and platform in ("tensorrt_plan", "onnxruntime_onnx"):
            problems.append("config.pbtxt lists no outputs")
        for t in tensors:
            problems += _tensor_problems(key, t)
    for group in cfg.get("instance_group", []):
        kind = field_value(group, "kind", Ident("KIND_AUTO"))
        if kind not in KINDS or not isinstance(kind, Ident):
            problems.append(f"instance_group kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
        count = field_value(group, "count", 1)
        if not isinstance(count, int) or count < 0:
            problems.append(f"instance_group count must be an integer >= 0, got {count!r}")
    return problems


def _tensor_problems(key: str, t: Message) -> list[str]:
    name = field_value(t, "name", "")
    label = f"{key} '{name}'"
    problems = [f"{label} has unknown field '{k}'" for k in t if k not in TENSOR_FIELDS]
    if not name:
        problems.append(f"an {key} has no name")
    dtype = field_value(t, "data_type", None)
    if dtype is None or dtype not in DATA_TYPES or not isinstance(dtype, Ident):
        problems.append(f"{label} has data_type {dtype!r}, not a Triton type like TYPE_FP32")
    dims = t.get("dims", [])
    bad = [d for d in dims if not isinstance(d, int) or (d < 1 and d != -1)]
    if bad:  # "dimension must be integer >= 1, or -1 to indicate a variable-size dimension"
        problems.append(f"{label} has dims {dims}: each must be >= 1, or -1 for a variable size")
    for reshape in t.get("reshape", []):
        shape = reshape.get("shape", [])
        if not bad and -1 not in dims and -1 not in shape and math.prod(dims) != math.prod(shape):
            problems.append(f"{label} reshapes dims {dims} to {shape}, which has another element count")
    return problems


def model_dir_problems(model_dir: Path, name: str | None = None) -> list[str]:
    """Everything Triton would refuse about ``REPO/NAME``: layout, version folders, model file, config.

    ``name`` is the folder name the model will have (for a folder staged under a temporary name).
    """
    model_dir = Path(model_dir)
    path = model_dir / "config.pbtxt"
    if not path.is_file():
        return ["config.pbtxt is missing"]
    try:
        cfg = parse_pbtxt(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return [f"config.pbtxt cannot be read ({type(exc).__name__})"]
    except IsodeployError as exc:
        return [str(exc)]
    problems = config_problems(cfg, name or model_dir.name)
    versions = sorted((int(p.name), p) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions:  # "at least one version must be available under the version policy of model 'X'"
        problems.append("there is no numeric version folder (e.g. 1/): Triton finds no version to load")
        return problems
    platform = field_value(cfg, "platform", "") or BACKEND_PLATFORMS.get(field_value(cfg, "backend", ""), "")
    filename = field_value(cfg, "default_model_filename", "") or DEFAULT_FILES.get(platform)
    latest = versions[-1][1]
    if filename and not (latest / filename).exists():
        problems.append(f"version folder {latest.name}/ has no {filename}")
    return problems


def validate_model_dir(model_dir: Path, name: str | None = None) -> None:
    """Raise one clear line when Triton would refuse this model folder (``name``: its final folder name)."""
    model_dir = Path(model_dir)
    problems = model_dir_problems(model_dir, name)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        shown = model_dir.parent / name if name else model_dir
        raise IsodeployError(f"Triton would refuse '{shown}': {problems[0]}{more}")


def repo_problems(repo: Path, skip: str | None = None) -> dict[str, list[str]]:
    """Problems of every model folder in a repository (a server in the default mode refuses to start on any)."""
    repo = Path(repo)
    if not repo.is_dir():
        return {}
    found = {}
    for sub in sorted(repo.iterdir()):
        if sub.is_dir() and not sub.name.startswith(".") and sub.name != skip:
            problems = model_dir_problems(sub)
            if problems:
                found[sub.name] = problems
    return found

"""``model.plan.json``: what an engine is, what built it, and whether it can run here.

A serialized engine only runs on the TensorRT version that built it and on GPUs of the same compute
capability, and the plan file itself says neither in a readable way. The metadata written beside every
plan lets the runner fail with one clear line instead of a deserialization crash, and lets the Triton
writer produce a config without TensorRT installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError
from isodeploy.runtime.trt.env import GpuInfo, slug
from isodeploy.runtime.dtypes import TRT_DTYPES  # noqa: F401 - one dtype table, re-exported here

META_FORMAT = "isodeploy-engine/1"


@dataclass
class ProfileShape:
    """One input's (min, opt, max) shapes for a TensorRT optimization profile."""

    name: str
    min: list[int]
    opt: list[int]
    max: list[int]


@dataclass
class TensorMeta:
    """An engine I/O tensor; ``shape`` has -1 where the profile decides (the batch)."""

    name: str
    dtype: str
    shape: list[int]


@dataclass
class EngineMeta:
    """Everything recorded about a built engine; serialised as ``<plan>.json``."""

    plan: str  # file name of the plan, relative to the metadata file
    tensorrt_version: str
    cuda_version: str | None
    gpu_name: str
    compute_capability: str
    precision: str  # fp16 | fp32 | fp16-legacy
    strongly_typed: bool
    fp16_source: str | None  # "onnx" (given mixed precision), "converted" (made on the fly), None for fp32
    profile: list[ProfileShape]
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    source_onnx: str
    source_onnx_sha256: str
    build_seconds: float
    builder_optimization_level: int | None
    workspace_bytes: int | None
    timing_cache: str | None
    plan_bytes: int
    plan_sha256: str
    created: str
    isodeploy_version: str
    format: str = META_FORMAT
    warnings: list[str] = field(default_factory=list)
    #: the profile's batch sizes {"min", "opt", "max"}: TensorRT tunes kernels for "opt", so bench warns at another batch
    profile_batches: dict[str, int] = field(default_factory=dict)

    @property
    def max_batch(self) -> int:
        return min(p.max[0] for p in self.profile)

    @property
    def min_batch(self) -> int:
        return max(p.min[0] for p in self.profile)

    @property
    def opt_batch(self) -> int:
        if self.profile_batches.get("opt"):
            return int(self.profile_batches["opt"])
        return min(p.opt[0] for p in self.profile)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "metadata") -> "EngineMeta":
        if not isinstance(data, dict) or data.get("format") != META_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise IsodeployError(f"{source} is not isodeploy engine metadata (format {found!r}, expected {META_FORMAT!r})")
        known = {f.name for f in fields(cls)}
        missing = sorted(n for n in known if n not in data and n not in ("format", "warnings", "profile_batches"))
        if missing:
            raise IsodeployError(f"{source} lacks {', '.join(missing)}; rebuild the engine with 'isodeploy build-engine'")
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            kwargs["profile"] = [ProfileShape(**p) for p in data["profile"]]
            kwargs["inputs"] = [TensorMeta(**t) for t in data["inputs"]]
            kwargs["outputs"] = [TensorMeta(**t) for t in data["outputs"]]
        except TypeError as exc:
            raise IsodeployError(f"{source} has malformed profile or I/O entries ({exc})") from exc
        return cls(**kwargs)


def meta_path(plan_path: Path) -> Path:
    """``model.plan`` → ``model.plan.json``."""
    plan_path = Path(plan_path)
    return plan_path.with_name(plan_path.name + ".json")


def read_engine_meta(plan_path: Path) -> EngineMeta:
    """Read the metadata beside a plan, or say how to get it."""
    path = meta_path(plan_path)
    if not path.is_file():
        raise IsodeployError(
            f"'{path}' is missing: isodeploy needs the metadata written beside the engine; "
            f"rebuild it with 'isodeploy build-engine'"
        )
    from isodeploy.core.jsonread import read_json_file

    data = read_json_file(path, "engine metadata file", "rebuild with 'isodeploy build-engine'")
    return EngineMeta.from_dict(data, source=f"'{path}'")


def check_engine_env(meta: EngineMeta, tensorrt_version: str, gpu: GpuInfo, plan_name: str = "the engine") -> list[str]:
    """Raise when this TensorRT or GPU cannot run the engine; return warnings for softer mismatches.

    TensorRT refuses plans from any other version, and kernels are compiled for one compute
    capability. Another GPU model with the same capability runs the plan, possibly slower.
    """
    if meta.tensorrt_version != tensorrt_version:
        raise IsodeployError(
            f"{plan_name} was built with TensorRT {meta.tensorrt_version} but this is TensorRT {tensorrt_version}: "
            f"engines run only on the TensorRT version that built them; rebuild it here with 'isodeploy build-engine'"
        )
    if meta.compute_capability != gpu.compute_capability:
        raise IsodeployError(
            f"{plan_name} was built for '{meta.gpu_name}' (compute capability {meta.compute_capability}) but this GPU "
            f"is '{gpu.name}' ({gpu.compute_capability}): rebuild it on this GPU with 'isodeploy build-engine'"
        )
    if meta.gpu_name != gpu.name:
        return [f"{plan_name} was built on '{meta.gpu_name}' and runs on '{gpu.name}' (same compute capability "
                f"{gpu.compute_capability}); tactics were tuned for the other GPU, rebuild for best speed"]
    return []


def timing_cache_file(cache_dir: Path, tensorrt_version: str, gpu: GpuInfo) -> Path:
    """One timing cache per TensorRT version and GPU: tactic timings measured elsewhere are meaningless here."""
    key = f"trt-{slug(tensorrt_version)}_{slug(gpu.name)}_{gpu.sm}"
    return Path(cache_dir) / f"{key}.timing-cache"


def write_meta_text(meta: EngineMeta) -> str:
    return json.dumps(meta.to_dict(), indent=2) + "\n"

"""One view of where this process runs: alone, or as one rank of a ``torchrun`` job.

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; when
``WORLD_SIZE`` > 1 we join the process group (NCCL on GPUs, gloo on CPU). Everything else in the
training code asks :class:`DistEnv` instead of ``torch.distributed`` so the single-process path
needs no process group at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from isodeploy.core.errors import IsodeployError

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class DistEnv:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str | None  # None when single-process

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, shows progress and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def sum(self, values: list[float]) -> list[float]:
        """Sum numbers over all ranks (float64 on the collective's device)."""
        if not self.distributed:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (picklable objects only)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def _pick_device(choice: str, local_rank: int) -> torch.device:
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise IsodeployError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                                 "lower --nproc_per_node to the GPUs per node")
        return torch.device("cuda", local_rank)
    if choice == "cuda":
        raise IsodeployError("--device cuda, but torch sees no CUDA GPU; use --device cpu")
    return torch.device("cpu")


def init_distributed(device_choice: str = "auto") -> DistEnv:
    """Join the ``torchrun`` job if there is one; otherwise describe a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(rank=0, world=1, local_rank=0, device=_pick_device(device_choice, 0), backend=None)
    missing = [name for name in TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise IsodeployError(f"WORLD_SIZE={world} but {', '.join(missing)} unset; launch with torchrun")
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = _pick_device(device_choice, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return DistEnv(rank=rank, world=world, local_rank=local_rank, device=device, backend=backend)


def shutdown(env: DistEnv) -> None:
    """Leave the process group (idempotent), so torchrun sees a clean exit."""
    if env.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def leave_after_failure(timeout_s: float = 10.0) -> None:
    """Every rank failed the same way (bad input): meet at a monitored barrier, which gives up after
    ``timeout_s`` when a rank never arrives, then leave the process group (idempotent)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo":
        from datetime import timedelta

        try:
            dist.monitored_barrier(timeout=timedelta(seconds=timeout_s), wait_all_ranks=True)
        except Exception:  # noqa: BLE001 - a rank failed elsewhere or left already
            pass
    dist.destroy_process_group()

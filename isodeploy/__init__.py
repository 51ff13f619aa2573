"""isodeploy: isomorphic pruning, export and honest latency reports for timm vision models."""

from __future__ import annotations

__version__ = "0.1.0"

from isodeploy.errors import IsodeployError



def load(folder):
    """Rebuild a pruned model from an isodeploy output folder (timm + spec + safetensors)."""
    from isodeploy.prune.spec import load_folder

    return load_folder(folder)


__all__ = ["__version__", "IsodeployError", "load"]

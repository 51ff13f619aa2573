"""isodeploy: isomorphic pruning, export and honest latency reports for timm vision models."""

from __future__ import annotations

__version__ = "0.1.0"

from isodeploy.errors import IsodeployError

__all__ = ["__version__", "IsodeployError"]

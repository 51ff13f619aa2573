"""What a MODEL string means, and the checks every command makes on it first.

A MODEL is an alias, a timm name, ``torchvision:NAME``, a factory ``package.module:function`` or an
isodeploy output folder. Re-exported as they are: :func:`is_path_like`, :func:`model_folder`,
:func:`shadowing_folder` (from :mod:`isodeploy.loading`), :func:`is_factory`, :func:`trust_factories`
and :func:`trust_scope` (from :mod:`isodeploy.core.trust`).
"""

from __future__ import annotations

from isodeploy.loading import is_path_like, model_folder, shadowing_folder
from isodeploy.core.trust import is_factory, trust_factories, trust_scope

__all__ = ["folder_ignores", "is_factory", "is_path_like", "model_argument_warnings", "model_folder", "shadowing_folder",
           "trust_factories", "trust_scope"]


def model_argument_warnings(model: str, weights: str | None = None, img_size: int | None = None) -> list[str]:
    """What every command does with its MODEL first, so that MODEL reads the same everywhere.

    A factory named here is trusted for this run (naming it is trusting it, so a folder it writes may
    rebuild from it). Returns the advisory lines: a folder named like a model never hides the model
    (say how to mean the folder), and ``weights``/``img_size`` that a folder ignores are said to be ignored.
    """
    model = str(model)
    if not is_path_like(model) and is_factory(model):
        trust_factories([model])
    lines = []
    if shadowing_folder(model) is not None:
        lines.append(f"'{model}' names a model and also an isodeploy folder here; using the model: pass ./{model} for the folder")
    ignored = folder_ignores(model, weights, img_size)
    return lines + ([ignored] if ignored else [])


def folder_ignores(model: str, weights: str | None, img_size: int | None) -> str | None:
    """A folder MODEL records its own weights and input size: the line saying ``--weights``/``--img-size``
    were ignored, when they were given (else None)."""
    if model_folder(str(model)) is None:
        return None
    ignored = [flag for flag, given in (("--weights", weights not in (None, "pretrained")), ("--img-size", img_size is not None)) if given]
    if not ignored:
        return None
    return f"{' and '.join(ignored)} ignored: MODEL '{model}' is an isodeploy folder, which records its own weights and input size"

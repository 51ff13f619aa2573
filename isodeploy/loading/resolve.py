"""Resolve a ``MODEL`` argument and load the model: alias, timm name, ``torchvision:NAME``,
``package.module:function`` or an isodeploy output folder.

Every command that takes a model goes through :func:`load_model`, so sources, weights and
``--img-size`` behave the same everywhere. It sits above :mod:`isodeploy.zoo` (dense models) and
:mod:`isodeploy.pruning` (a folder is rebuilt from its spec) so that neither imports the other's way up.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError
from isodeploy.pruning.spec import load_folder, read_spec, source_of_spec
from isodeploy.zoo.load import SPEC_FILE, LoadedModel, ModelRef, build_dense
from isodeploy.zoo.presets import load_presets
from isodeploy.zoo.sources import Source, is_factory, torchvision_builder


def is_path_like(query: str) -> bool:
    """A MODEL string written as a path: it has a separator (``./deit_b``, ``runs/p``, ``/abs``), is
    ``.``/``..`` or starts with ``~``. Such a string always means a folder, never a model name."""
    if query.startswith(("hf:", "torchvision:")):  # hf:org/name is a hub id, not a path
        return False
    return "/" in query or "\\" in query or query in (".", "..") or query.startswith("~")


def names_a_model(query: str) -> bool:
    """Whether a bare MODEL string is a model name: ``torchvision:NAME``, a factory, an alias or a timm name."""
    import timm

    if query.startswith(("torchvision:", "hf:")) or is_factory(query):
        return True
    aliases, _ = load_presets()
    return query in aliases or timm.is_model(query)


def model_folder(query: str) -> Path | None:
    """The folder a MODEL string means, or None when it means a model (docs/reliability.md, "MODEL:
    a name or a folder"): a path-like string is always a folder; a bare name is a folder only when
    it is not a model name and the folder holds ``isodeploy.json``. So ``prune-export deit_b -o
    deit_b`` prunes the model, and a stray folder named like a model never hides it."""
    query = str(query)
    if is_path_like(query):
        return Path(query).expanduser()
    path = Path(query)
    if path.is_dir() and (path / SPEC_FILE).is_file() and not names_a_model(query):
        return path
    return None


def shadowing_folder(query: str) -> Path | None:
    """An isodeploy folder in the working directory named exactly like the model MODEL names (the
    model wins; the CLI warns once that ``./NAME`` means the folder)."""
    path = Path(str(query))
    if is_path_like(str(query)) or not (path / SPEC_FILE).is_file():
        return None
    return path if names_a_model(str(query)) else None


def resolve(query: str) -> ModelRef:
    """Turn a ``MODEL`` string into a :class:`ModelRef`, or fail with close-match suggestions."""
    import timm

    path = model_folder(query)
    if path is not None and not path.is_dir():
        raise IsodeployError(f"'{query}' {'is not a folder' if path.exists() else 'does not exist'}; a MODEL written "
                             "as a path must be an isodeploy output folder")
    if path is None and Path(query).is_dir() and not names_a_model(query):
        path = Path(query)  # a bare folder name that is no model: say what the folder lacks
    if path is not None:
        if (path / SPEC_FILE).is_file():
            source = source_of_spec(read_spec(path), path)
            return ModelRef(query=query, timm_name=source.label, folder=path, source=source)
        raise IsodeployError(f"'{query}' is a folder but holds no {SPEC_FILE}; pass an isodeploy output folder")
    if query.startswith("torchvision:"):
        name = query.split(":", 1)[1]
        torchvision_builder(name)  # fails with suggestions when unknown
        return ModelRef(query=query, timm_name=query, source=Source("torchvision", name))
    if query.startswith("hf:"):
        from isodeploy.zoo.hf import check_name

        check_name(query[3:])  # transformers installed, a known model type (or a hub id)
        return ModelRef(query=query, timm_name=query, source=Source("hf", query[3:]))
    if is_factory(query):
        return ModelRef(query=query, timm_name=query, source=Source("factory", query))
    aliases, _ = load_presets()
    if query in aliases:
        return ModelRef(query=query, timm_name=aliases[query].timm, alias=aliases[query], source=Source("timm", aliases[query].timm))
    if timm.is_model(query):
        return ModelRef(query=query, timm_name=query, source=Source("timm", query))
    candidates = list(aliases) + timm.list_models()
    close = difflib.get_close_matches(query, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else (
        " Run 'isodeploy presets' for aliases, or give a timm name, torchvision:NAME, package.module:function or a folder.")
    raise IsodeployError(f"unknown model '{query}'.{hint}")


def load_model(query: str, weights: str = "pretrained", img_size: int | None = None, **create_kwargs: Any) -> LoadedModel:
    """Resolve ``query`` and build the model in eval mode: an output folder from its spec and weights,
    a name by :func:`isodeploy.zoo.load.build_dense` (``weights``: ``pretrained`` | ``random`` | a file)."""
    ref = resolve(query)
    if ref.folder is not None:
        return load_folder(ref.folder)
    return build_dense(ref, weights, img_size, create_kwargs)

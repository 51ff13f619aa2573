"""Where a model comes from: timm, torchvision, a user factory ``package.module:function``, or nothing.

A :class:`Source` is recorded in every saved folder so that ``load`` can rebuild the architecture
before loading the pruned weights. A folder is *data*: what it says is not trusted to run code.
- timm and torchvision sources take only allow-listed keyword arguments from a file (architecture
  sizes, never paths, URLs or hub options), each checked for type;
- a factory source is imported only when the caller names the same factory or passes ``trust=True``;
- ``kind="none"`` means "the caller gives the dense model" (``load(folder, model=...)``).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from torch import nn

from isodeploy.core.errors import IsodeployError
from isodeploy.core.trust import _TRUSTED, FACTORY_RE, is_factory, is_trusted, trust_factories, trust_scope  # noqa: F401 - one trust registry

KINDS = ("timm", "torchvision", "hf", "factory", "none")
HF_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")  # a model type or org/name

#: keyword arguments a file may give, by source kind, with the JSON types each accepts. They change
#: sizes of the architecture only; anything that names files, URLs, caches or configs is refused.
_SIZE = (int,)
_NUM = (int, float)
ALLOWED_KWARGS: dict[str, dict[str, tuple[type, ...]]] = {
    "timm": {
        "num_classes": _SIZE, "img_size": (int, list), "in_chans": _SIZE, "patch_size": (int, list), "embed_dim": (int, list),
        "depth": (int, list), "depths": (list,), "num_heads": (int, list), "dims": (list,), "mlp_ratio": _NUM,
        "global_pool": (str,), "class_token": (bool,), "drop_rate": _NUM, "drop_path_rate": _NUM, "window_size": (int, list),
        "qkv_bias": (bool,), "width_multiplier": _NUM, "channel_multiplier": _NUM, "stem_width": _SIZE,
        "layers": (list,), "channels": (list,), "embed_dims": (list,), "key_dim": (int, list), "mlp_ratios": (list,),
    },
    "torchvision": {
        "num_classes": _SIZE, "image_size": _SIZE, "patch_size": _SIZE, "num_layers": _SIZE, "num_heads": _SIZE,
        "hidden_dim": _SIZE, "mlp_dim": _SIZE, "width_mult": _NUM, "dropout": _NUM, "aux_logits": (bool,),
        "init_weights": (bool,), "transform_input": (bool,),
    },
    "hf": {  # config fields of transformers' vision models that set sizes
        "num_labels": _SIZE, "image_size": _SIZE, "patch_size": _SIZE, "num_channels": _SIZE, "hidden_size": _SIZE,
        "num_hidden_layers": _SIZE, "num_attention_heads": _SIZE, "intermediate_size": _SIZE, "hidden_sizes": (list,),
        "depths": (list,), "embed_dim": _SIZE, "num_heads": (list,), "mlp_ratio": _NUM, "window_size": _SIZE,
        "qkv_bias": (bool,), "drop_path_rate": _NUM, "hidden_dropout_prob": _NUM, "attention_probs_dropout_prob": _NUM,
        "num_stages": _SIZE, "embedding_size": _SIZE, "num_groups": _SIZE,
    },
}


@dataclass
class Source:
    """How to build the dense architecture: ``kind`` + ``name`` + keyword arguments."""

    kind: str = "none"
    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return {"timm": self.name, "torchvision": f"torchvision:{self.name}", "hf": f"hf:{self.name}",
                "factory": self.name}.get(self.kind, "custom model")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def create(self, *, pretrained: bool = False, trusted_factory: str | None = None, trust: bool = False) -> nn.Module:
        """Build the architecture (random init unless ``pretrained``)."""
        from isodeploy.core.limits import check_build_fits

        if self.kind == "timm":
            import timm

            if not timm.is_model(self.name):
                raise IsodeployError(f"the source model '{self.name}' is unknown to timm {timm.__version__}")
            check_build_fits(lambda: timm.create_model(self.name, pretrained=False, **self.kwargs), self.label)  # before allocating
            return _call(lambda: timm.create_model(self.name, pretrained=pretrained, **self.kwargs), self.label, self.kwargs)
        if self.kind == "torchvision":
            check_build_fits(lambda: torchvision_builder(self.name)(weights=None, **self.kwargs), self.label)
            return _call(lambda: torchvision_builder(self.name)(weights="DEFAULT" if pretrained else None, **self.kwargs),
                         self.label, self.kwargs)
        if self.kind == "hf":
            from isodeploy.zoo.hf import build

            check_build_fits(lambda: build(self.name, self.kwargs, False), self.label)  # on the meta device, before allocating
            return _call(lambda: build(self.name, self.kwargs, pretrained), self.label, self.kwargs)
        if self.kind == "factory":
            if not (trust or trusted_factory == self.name or self.name in _TRUSTED):
                from isodeploy.core.errors import CliWorded  # noqa: PLC0415

                why = f"the folder names the factory '{self.name}', and a folder is not trusted to choose code to import"
                raise CliWorded(f"{why}; pass model='{self.name}' (the same factory) or trust=True",
                                f"{why}; pass isodeploy --trust-factory {self.name} before the command")
            return _call(lambda: import_factory(self.name)(**self.kwargs), self.label, self.kwargs)
        raise IsodeployError("the folder was saved from a custom model without a source; pass the dense model: "
                             "isodeploy.load(folder, model=MyModel())")


class BuildError(IsodeployError):
    """A builder raised; ``__cause__`` holds its exception (offline downloads are told apart by it)."""


def _call(build: Callable[[], nn.Module], label: str, kwargs: dict) -> nn.Module:
    try:
        model = build()
    except IsodeployError:
        raise
    except Exception as exc:  # builders raise TypeError/ValueError/AssertionError for bad kwargs
        raise BuildError(f"could not build '{label}' with {kwargs} ({type(exc).__name__}: {str(exc)[:160]})") from exc
    if not isinstance(model, nn.Module):
        raise IsodeployError(f"'{label}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def torchvision_builder(name: str) -> Callable[..., nn.Module]:
    import torchvision

    try:
        return torchvision.models.get_model_builder(name)
    except ValueError as exc:
        import difflib

        close = difflib.get_close_matches(name, torchvision.models.list_models(), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else " See torchvision.models.list_models()."
        raise IsodeployError(f"unknown torchvision model '{name}'.{hint}") from exc


def import_factory(spec: str) -> Callable[..., nn.Module]:
    """``package.module:function`` → the callable (like ``uvicorn app:main``)."""
    if not FACTORY_RE.fullmatch(spec):
        raise IsodeployError(f"factory '{spec}' must look like package.module:function")
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own code failing at import
        raise IsodeployError(f"factory '{spec}': module '{module_name}' does not import ({type(exc).__name__}: {str(exc)[:120]}); "
                             "is it on the Python path (PYTHONPATH)?") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise IsodeployError(f"factory '{spec}': module '{module_name}' has no '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise IsodeployError(f"factory '{spec}' is not callable")
    return obj


def checked_kwargs(kind: str, kwargs: Any, where: str) -> dict[str, Any]:
    """The keyword arguments a file may pass to a builder; anything else is refused in one line."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise IsodeployError(f"{where}: the source's kwargs must be an object; got {type(kwargs).__name__}")
    from isodeploy.core.bounds import check_size_kwarg  # every size from a file is bounded

    if kind == "factory":  # the factory is the user's own code, run only when trusted; plain JSON values only
        for key, value in kwargs.items():
            if not isinstance(value, (int, float, str, bool, list, type(None))):
                raise IsodeployError(f"{where}: factory kwarg '{key}' has a non-JSON value")
            check_size_kwarg(key, value, where)
        return dict(kwargs)
    allowed = ALLOWED_KWARGS.get(kind, {})
    out = {}
    for key, value in kwargs.items():
        if key not in allowed:
            raise IsodeployError(f"{where}: '{key}' may not come from a file (allowed for {kind}: {', '.join(sorted(allowed))})")
        if isinstance(value, bool) and bool not in allowed[key] or not isinstance(value, allowed[key]):
            raise IsodeployError(f"{where}: '{key}' must be {'/'.join(t.__name__ for t in allowed[key])}; got {value!r}")
        check_size_kwarg(key, value, where)
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def source_from_json(data: Any, where: str) -> Source:
    """Read a spec's ``source`` (schema 1: ``{"timm": ..., "create_kwargs": ...}``; schema 2 adds ``kind``)."""
    if not isinstance(data, dict):
        raise IsodeployError(f"{where}: 'source' must be an object")
    kind = data.get("kind", "timm" if "timm" in data else None)
    if kind not in KINDS:
        raise IsodeployError(f"{where}: source kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if "name" in data and "timm" in data and data["name"] != data["timm"]:
        raise IsodeployError(f"{where}: source.name '{data['name']}' and source.timm '{data['timm']}' disagree; the spec was edited")
    name = data.get("name", data.get("timm", "")) if kind != "none" else ""
    if kind != "none" and (not isinstance(name, str) or not name):
        raise IsodeployError(f"{where}: the source names no model")
    if kind == "factory" and not FACTORY_RE.fullmatch(name):
        raise IsodeployError(f"{where}: factory '{name}' must look like package.module:function")
    if kind == "hf" and not HF_NAME_RE.fullmatch(name):
        raise IsodeployError(f"{where}: '{name[:60]}' is not a transformers model type or hub id (org/name); the spec was edited")
    kwargs = data.get("kwargs", data.get("create_kwargs"))
    return Source(kind=kind, name=name, kwargs=checked_kwargs(kind, kwargs, where))


def source_of(model: nn.Module) -> Source | None:
    """The source :func:`isodeploy.create_model` attached to a model it built, if any."""
    found = getattr(model, "_isodeploy_source", None)
    return found if isinstance(found, Source) else None


def check_file_source(name: str | None, kwargs: Any, where: str) -> dict[str, Any]:
    """A model name and builder kwargs that a *file* (ONNX or plan metadata) asks to rebuild: a factory
    only when the user trusted it (``--trust-factory``), kwargs only from the allow-list of its kind."""
    if not name:
        return checked_kwargs("timm", kwargs, where) if kwargs else {}
    from pathlib import Path

    if Path(name).is_dir():  # an isodeploy folder: rebuilt from its own spec, which is checked on read
        return {}
    if name.startswith("torchvision:"):
        return checked_kwargs("torchvision", kwargs, where)
    if name.startswith("hf:"):
        return checked_kwargs("hf", kwargs, where)
    if ":" in name:
        if not FACTORY_RE.fullmatch(name) or name not in _TRUSTED:
            raise IsodeployError(f"{where} names the factory '{name}' as its source, and a file is not trusted to choose code "
                                 f"to import; pass the reference yourself (--reference MODEL) or isodeploy --trust-factory {name} …")
        return checked_kwargs("factory", kwargs, where)
    return checked_kwargs("timm", kwargs, where)

"""Hugging Face ``transformers`` vision models as a source: ``hf:MODEL_TYPE`` or ``hf:HUB_ID``.

* ``hf:vit``, ``hf:convnext``, … (a *model type*): the architecture from its default config, offline,
  random init; keyword arguments override config fields (``hidden_size``, ``num_hidden_layers``,
  ``image_size``, ``num_labels``, …) and ``--img-size`` sets ``image_size``.
* ``hf:facebook/deit-base-patch16-224`` (a *hub id*, it has a ``/``): the config and, with
  ``--weights pretrained``, the weights from the hub (``from_pretrained``, never with remote code).

The model is wrapped so that it takes ``pixel_values`` and returns the logits tensor, the contract
every later stage (export, verify, bench) relies on. ``transformers`` is an optional extra.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from isodeploy.core.errors import IsodeployError

PREFIX = "hf:"
INSTALL_HINT = "install the extra: pip install -e '.[hf]' (or pip install transformers)"


class HFImageClassifier(nn.Module):
    """``pixel_values`` → logits, with the size and normalisation the rest of isodeploy reads."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        config = model.config
        size = getattr(config, "image_size", 224)
        size = size[0] if isinstance(size, (list, tuple)) else size
        channels = getattr(config, "num_channels", 3)
        self.num_classes = int(getattr(config, "num_labels", 1000))
        self.pretrained_cfg = {"input_size": (channels, int(size), int(size)), "mean": (0.485, 0.456, 0.406),
                               "std": (0.229, 0.224, 0.225), "hf_name": name}

    def forward(self, pixel_values):  # noqa: D401 - a plain forward
        out = self.model(pixel_values=pixel_values)
        logits = getattr(out, "logits", None)
        if logits is None:
            raise IsodeployError(f"hf:{self.pretrained_cfg['hf_name']} returned {type(out).__name__} without logits: "
                                 "it is not an image classifier isodeploy can deploy")
        return logits


def _transformers():
    try:
        import transformers
    except ImportError:
        raise IsodeployError(f"hf: models need the transformers package: {INSTALL_HINT}") from None
    return transformers


def model_types() -> list[str]:
    """Every model type with an image-classification head in this transformers version."""
    transformers = _transformers()
    mapping = transformers.models.auto.modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
    return sorted(mapping)


def check_name(name: str) -> None:
    """A hub id (``org/name``) or a model type with an image-classification head; one line otherwise."""
    if not name:
        raise IsodeployError("hf: needs a model type or a hub id, e.g. hf:vit or hf:facebook/deit-base-patch16-224")
    if "/" in name:
        return
    types = model_types()
    if name not in types:
        import difflib

        close = difflib.get_close_matches(name, types, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join('hf:' + c for c in close)}?" if close else f" Known: {', '.join(types[:12])}, …"
        raise IsodeployError(f"'hf:{name}' is not a transformers model type with an image-classification head.{hint}")


def build(name: str, kwargs: dict[str, Any], pretrained: bool) -> HFImageClassifier:
    """Build the wrapped model: from the config (random init) or, for a hub id with ``pretrained``, the hub."""
    transformers = _transformers()
    check_name(name)
    if "/" in name:
        if pretrained:
            model = transformers.AutoModelForImageClassification.from_pretrained(name, **kwargs)
        else:
            config = transformers.AutoConfig.from_pretrained(name, **kwargs)
            model = head_class(config.model_type)(config)
    else:
        if pretrained:
            raise IsodeployError(f"'hf:{name}' is a model type, which has no pretrained weights of its own: pass --weights "
                                 "random, or a hub id such as hf:google/vit-base-patch16-224")
        model = head_class(name)(transformers.AutoConfig.for_model(name, **kwargs))
    return HFImageClassifier(model.eval(), name)


def head_class(model_type: str) -> type:
    """The image-classification class of a model type (the first, where transformers lists several:
    DeiT's plain head before its distillation head), looked up by name, random init on construction."""
    transformers = _transformers()
    mapping = transformers.models.auto.modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
    names = mapping.get(model_type)
    if names is None:
        raise IsodeployError(f"transformers model type '{model_type}' has no image-classification head")
    name = names[0] if isinstance(names, (list, tuple)) else names
    return getattr(transformers, name)

"""Read the TOML presets in ``models/`` (installed as ``isodeploy.presets``): aliases and recipes.

Kept apart from :mod:`isodeploy.zoo` so that reading presets never imports torch or timm.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from isodeploy.core.errors import IsodeployError


@dataclass(frozen=True)
class Alias:
    """A short name users type (``deit_b``) for a timm model, with its default recipe."""

    name: str
    timm: str
    recipe: str | None
    file: str


@dataclass(frozen=True)
class Recipe:
    """A pruning recipe: fractions removed per class kind, with where the numbers come from.

    ``ratio`` applies to every class; the kind-specific ratios override it for transformers.
    """

    name: str
    family: str
    provenance: str
    file: str
    ratio: float | None = None
    embed_ratio: float | None = None
    mlp_ratio: float | None = None
    head_ratio: float | None = None
    head_dim_ratio: float | None = None
    source: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


_RECIPE_KEYS = {"family", "provenance", "ratio", "embed_ratio", "mlp_ratio", "head_ratio", "head_dim_ratio", "source"}


def presets_dir() -> Path:
    """The folder holding the preset TOML files: the checkout's ``models/`` or the installed copy."""
    checkout = Path(__file__).resolve().parents[2] / "models"  # isodeploy/zoo/presets.py → the checkout
    if checkout.is_dir() and any(checkout.glob("*.toml")):
        return checkout
    import isodeploy.presets as installed  # noqa: PLC0415 - only needed outside a checkout

    return Path(installed.__file__).parent


@lru_cache(maxsize=1)
def load_presets() -> tuple[dict[str, Alias], dict[str, Recipe]]:
    """Parse every preset file once; a malformed file is a clear error naming the file."""
    aliases: dict[str, Alias] = {}
    recipes: dict[str, Recipe] = {}
    for path in sorted(presets_dir().glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise IsodeployError(f"preset file {path} is not valid TOML: {exc}") from exc
        for name, entry in data.get("alias", {}).items():
            if "timm" not in entry:
                raise IsodeployError(f"alias '{name}' in {path} has no 'timm' model name")
            aliases[name] = Alias(name=name, timm=entry["timm"], recipe=entry.get("recipe"), file=path.name)
        for name, entry in data.get("recipe", {}).items():
            known = {k: v for k, v in entry.items() if k in _RECIPE_KEYS}
            extra = {k: v for k, v in entry.items() if k not in _RECIPE_KEYS}
            known.setdefault("family", "any")
            known.setdefault("provenance", "")
            recipes[name] = Recipe(name=name, file=path.name, extra=extra, **known)
    for alias in aliases.values():
        if alias.recipe and alias.recipe not in recipes:
            raise IsodeployError(f"alias '{alias.name}' ({alias.file}) names unknown recipe '{alias.recipe}'")
    return aliases, recipes


def get_recipe(name: str) -> Recipe:
    """Look a recipe up by name, suggesting close names when it is unknown."""
    import difflib

    _, recipes = load_presets()
    if name in recipes:
        return recipes[name]
    close = difflib.get_close_matches(name, list(recipes), n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise IsodeployError(f"unknown preset '{name}'.{hint} Run 'isodeploy presets' to list them.")

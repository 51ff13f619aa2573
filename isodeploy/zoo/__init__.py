"""Model sources: alias | timm name | ``torchvision:NAME`` | ``package.module:function`` | output folder → nn.Module.

One entry point, :func:`load_model`, in the spirit of ``timm.create_model``: every command that
takes a model goes through it, so sources, weights and ``--img-size`` behave the same everywhere.
"""

from isodeploy.zoo.load import (  # noqa: F401 - the zoo's public surface
    RANDOM_WEIGHTS_SEED,
    SPEC_FILE,
    WEIGHTS_FILE,
    LoadedModel,
    ModelRef,
    apply_state,
    load_model,
    load_state_file,
    resolve,
)
from isodeploy.zoo.sources import Source, import_factory, source_from_json, source_of  # noqa: F401

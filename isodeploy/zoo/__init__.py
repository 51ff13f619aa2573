"""Model sources: alias | timm name | ``torchvision:NAME`` | ``package.module:function`` | output folder → nn.Module.

Dense models from their sources; a ``MODEL`` argument (names and output folders) is resolved by
:func:`isodeploy.loading.load_model`, one layer up.
"""

from isodeploy.zoo.load import (  # noqa: F401 - the zoo's public surface
    RANDOM_WEIGHTS_SEED, SPEC_FILE, WEIGHTS_FILE, LoadedModel, ModelRef, apply_state, build_dense, load_state_file,
)
from isodeploy.zoo.sources import Source, import_factory, source_from_json, source_of  # noqa: F401

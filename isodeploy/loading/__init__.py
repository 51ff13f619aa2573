"""``MODEL`` argument → model: names through :mod:`isodeploy.zoo`, output folders through :mod:`isodeploy.pruning`."""

from isodeploy.loading.resolve import is_path_like, load_model, model_folder, names_a_model, resolve, shadowing_folder

__all__ = ["is_path_like", "load_model", "model_folder", "names_a_model", "resolve", "shadowing_folder"]

"""Presets: model aliases and pruning recipes (TOML). Installed as ``isodeploy.presets``."""

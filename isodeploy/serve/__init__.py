"""Serving: Triton model-folder validation, a local ``tritonserver`` process, and ``triton-repo --check``."""

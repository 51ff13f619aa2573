"""The package version, low in the layers so that every module that records it (specs, ONNX metadata,
ownership markers) can import it without importing the public API."""

__version__ = "0.2.0"

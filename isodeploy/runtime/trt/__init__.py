"""TensorRT at run time: the one engine runner, the import/capability probe and the engine metadata
sidecar (``model.plan.json``). Building engines is :mod:`isodeploy.export.trt`."""

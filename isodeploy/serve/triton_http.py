"""Just enough of Triton's HTTP/REST protocol (KServe v2) to load a model and send one request.

Standard library only, so ``triton-repo --check`` needs no client package. Tensors travel with the binary
data extension, so the float values are compared bit for bit and not through JSON text.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

# Triton datatype <-> numpy dtype (BF16 has no numpy type and is left out).
_DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
           "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
           "FP32": np.float32, "FP64": np.float64}


@dataclass
class HttpReply:
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body or b"null")

    def error(self) -> str:
        try:
            return str(self.json().get("error", "")) or self.body.decode(errors="replace")
        except (ValueError, AttributeError):
            return self.body.decode(errors="replace")


class TritonHttp:
    """A blocking client for one server at ``http://host:port``."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float | None = None) -> HttpReply:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return HttpReply(resp.status, resp.read(), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            return HttpReply(exc.code, exc.read(), dict(exc.headers or {}))

    def live(self) -> bool:
        try:
            return self.request("GET", "/v2/health/live", timeout=2).status == 200
        except OSError:
            return False

    def load(self, name: str, timeout: float) -> HttpReply:
        return self.request("POST", f"/v2/repository/models/{name}/load", b"{}",
                            {"Content-Type": "application/json"}, timeout=timeout)

    def ready(self, name: str) -> bool:
        return self.request("GET", f"/v2/models/{name}/ready").status == 200

    def config(self, name: str) -> dict:
        reply = self.request("GET", f"/v2/models/{name}/config")
        if reply.status != 200:
            raise OSError(f"GET config of '{name}' answered {reply.status}: {reply.error()}")
        return reply.json()

    def server_version(self) -> str:
        reply = self.request("GET", "/v2")
        return str(reply.json().get("version", "?")) if reply.status == 200 else "?"

    def infer(self, name: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """One inference request; raises OSError with the server's message when it fails."""
        header = {"inputs": [], "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs]}
        blobs = []
        for key, arr in inputs.items():
            arr = np.ascontiguousarray(arr)
            blob = arr.tobytes()
            header["inputs"].append({"name": key, "shape": list(arr.shape), "datatype": _triton_dtype(arr.dtype),
                                     "parameters": {"binary_data_size": len(blob)}})
            blobs.append(blob)
        head = json.dumps(header).encode()
        reply = self.request("POST", f"/v2/models/{name}/infer", head + b"".join(blobs),
                             {"Content-Type": "application/octet-stream",
                              "Inference-Header-Content-Length": str(len(head))})
        if reply.status != 200:
            raise OSError(f"inference on '{name}' answered {reply.status}: {reply.error()}")
        return _decode(reply)


def _triton_dtype(dtype: np.dtype) -> str:
    for key, value in _DTYPES.items():
        if np.dtype(value) == dtype:
            return key
    raise ValueError(f"no Triton datatype for numpy {dtype}")


def _decode(reply: HttpReply) -> dict[str, np.ndarray]:
    headers = {k.lower(): v for k, v in reply.headers.items()}
    size = int(headers.get("inference-header-content-length", len(reply.body)))
    meta = json.loads(reply.body[:size])
    out, offset = {}, size
    for item in meta.get("outputs", []):
        dtype = np.dtype(_DTYPES[item["datatype"]])
        nbytes = (item.get("parameters") or {}).get("binary_data_size")
        if nbytes is None:  # the server answered in JSON
            out[item["name"]] = np.asarray(item["data"], dtype).reshape(item["shape"])
            continue
        out[item["name"]] = np.frombuffer(reply.body[offset:offset + nbytes], dtype).reshape(item["shape"])
        offset += nbytes
    return out

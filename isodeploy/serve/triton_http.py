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

from isodeploy.core.errors import ExitCode, IsodeployError
from isodeploy.core.jsonread import JsonError, parse_json

# Triton datatype <-> numpy dtype (BF16 has no numpy type and is left out).
_DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
           "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
           "FP32": np.float32, "FP64": np.float64}


class OffSpecReply(IsodeployError):
    """The server answered outside the KServe v2 protocol (exit 1, like any failed ``--check``)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}; is the server a Triton release that speaks the KServe v2 HTTP protocol?",
                         exit_code=ExitCode.NUMERIC)


@dataclass
class HttpReply:
    status: int
    body: bytes
    headers: dict

    what: str = "the server's reply"

    def json(self):
        """The reply's JSON (bounded reader); :class:`OffSpecReply` when it is not JSON."""
        try:
            return parse_json(self.body or b"null", self.what)
        except JsonError as exc:
            raise OffSpecReply(str(exc)) from None

    def error(self) -> str:
        try:
            data = self.json()
        except OffSpecReply:
            data = None
        message = data.get("error", "") if isinstance(data, dict) else ""
        return str(message) or self.body.decode(errors="replace")[:300]


class TritonHttp:
    """A blocking client for one server at ``http://host:port``."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float | None = None) -> HttpReply:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        what = f"Triton's reply to {method} {path}"
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return HttpReply(resp.status, resp.read(), dict(resp.headers), what)
        except urllib.error.HTTPError as exc:
            return HttpReply(exc.code, exc.read(), dict(exc.headers or {}), what)

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
        config = reply.json()
        if not isinstance(config, dict):
            raise OffSpecReply(f"{reply.what} is a JSON {type(config).__name__}, not a model config object")
        return config

    def server_version(self) -> str:
        """The server's version, or '?' (only shown, so an odd reply here is no failure)."""
        reply = self.request("GET", "/v2")
        try:
            data = reply.json() if reply.status == 200 else None
        except OffSpecReply:
            data = None
        return str(data.get("version", "?"))[:40] if isinstance(data, dict) else "?"

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
    """The output tensors of an inference reply; :class:`OffSpecReply` naming the first field that is
    not as the protocol says (header size, datatype, shape, byte count)."""
    headers = {k.lower(): v for k, v in reply.headers.items()}
    raw_size = headers.get("inference-header-content-length", len(reply.body))
    try:
        size = int(raw_size)
    except (TypeError, ValueError):
        size = -1
    if not 0 <= size <= len(reply.body):
        raise OffSpecReply(f"{reply.what} declares a JSON header of {str(raw_size)[:20]} bytes in a {len(reply.body)}-byte body")
    meta = HttpReply(reply.status, reply.body[:size], {}, reply.what).json()
    outputs = meta.get("outputs", []) if isinstance(meta, dict) else None
    if not isinstance(outputs, list):
        raise OffSpecReply(f"{reply.what} has no list of 'outputs'")
    out, offset = {}, size
    for i, item in enumerate(outputs):
        name, array, used = _decode_output(item, i, reply, offset)
        out[name] = array
        offset += used
    return out


def _decode_output(item: object, i: int, reply: HttpReply, offset: int) -> tuple[str, np.ndarray, int]:
    """One entry of a reply's ``outputs`` (checked name, datatype, shape and size) and the binary
    bytes it took."""
    def bad(what: str) -> OffSpecReply:
        return OffSpecReply(f"{reply.what}: outputs[{i}] {what}")

    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise bad("is not an object with a 'name'")
    datatype = item.get("datatype")
    if datatype not in _DTYPES:
        given = "no datatype" if datatype is None else f"datatype {str(datatype)[:20]!r}"
        raise bad(f"('{item['name']}') has {given}, which isodeploy cannot compare "
                  f"(one of {', '.join(_DTYPES)})")
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad(f"('{item['name']}') has shape {str(shape)[:40]}, not a list of sizes")
    dtype = np.dtype(_DTYPES[datatype])
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    params = item.get("parameters") or {}
    nbytes = params.get("binary_data_size") if isinstance(params, dict) else None
    if nbytes is None:  # the server answered in JSON
        data = item.get("data")
        if not isinstance(data, list) or len(data) != count or not all(isinstance(v, (int, float)) for v in data):
            raise bad(f"('{item['name']}') has no {count} numbers in 'data' for shape {shape}")
        return item["name"], np.asarray(data, dtype).reshape(shape), 0
    if not isinstance(nbytes, int) or nbytes != count * dtype.itemsize or offset + nbytes > len(reply.body):
        raise bad(f"('{item['name']}') declares {str(nbytes)[:20]} bytes, but shape {shape} of {datatype} needs "
                  f"{count * dtype.itemsize} (and {len(reply.body) - offset} are left in the body)")
    return item["name"], np.frombuffer(reply.body[offset:offset + nbytes], dtype).reshape(shape), nbytes

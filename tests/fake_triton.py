"""A stand-in ``tritonserver`` for ``triton-repo --check`` tests: a tiny local HTTP server that speaks
just enough KServe v2 for one model, and answers off-spec in the way ``$FAKE_TRITON_MODE`` names.

It is started exactly as the real binary is (``--http-port=N`` among Triton's flags). The served
config comes from ``$FAKE_TRITON_CONFIG`` (a JSON file); the model it computes is ``logits = sum of
each sample's inputs`` repeated 10 times (what tests/test_reliability_round3.py's tiny ONNX computes).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

MODE = os.environ.get("FAKE_TRITON_MODE", "good")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, body: bytes, status: int = 200, headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v2":
            self._send(b"<html>hello</html>" if MODE == "version_html" else b'{"version": "2.51.0"}')
        elif self.path.endswith("/config"):
            config = json.loads(open(os.environ["FAKE_TRITON_CONFIG"]).read())
            if MODE == "config_dims_text":
                config["input"][0]["dims"] = ["three"]
            body = {"config_html": b"<html>oops</html>", "config_list": b"[]"}.get(MODE, json.dumps(config).encode())
            self._send(body)
        else:  # live, ready
            self._send(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        if not self.path.endswith("/infer"):  # load
            self._send(b"{}")
            return
        size = int(self.headers["Inference-Header-Content-Length"])
        header = json.loads(body[:size])
        shape = header["inputs"][0]["shape"]
        x = np.frombuffer(body[size:], np.float32).reshape(shape)
        y = np.repeat(x.reshape(shape[0], -1).sum(axis=1, keepdims=True), 10, axis=1).astype(np.float32)
        blob = y.tobytes()
        out = {"name": "logits", "datatype": "FP32", "shape": list(y.shape), "parameters": {"binary_data_size": len(blob)}}
        if MODE == "bf16":
            out["datatype"] = "BF16"
        elif MODE == "no_dtype":
            del out["datatype"]
        elif MODE == "wrong_shape":
            out["shape"] = [shape[0], 99]
        reply = json.dumps({"outputs": [] if MODE == "no_output" else [out]}).encode()
        length_header = "abc" if MODE == "header_size" else str(len(reply))
        self._send(reply + blob, headers={"Inference-Header-Content-Length": length_header,
                                          "Content-Type": "application/octet-stream"})


def main(argv: list[str]) -> None:
    port = next(int(a.split("=", 1)[1]) for a in argv if a.startswith("--http-port="))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])

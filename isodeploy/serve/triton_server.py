"""Start a ``tritonserver`` process on free localhost ports, load one model, stop it by its process group.

Used by ``triton-repo --check`` and by the test suite. The server runs in explicit model-control mode, so only
the model asked for is loaded (other folders in the repository cannot stop it), and every wait is bounded:
a server that dies or never answers is reported with the last error line of its own log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from isodeploy.core.errors import ExitCode, IsodeployError
from isodeploy.serve.triton_http import TritonHttp

SERVER_ENV = "ISODEPLOY_TRITONSERVER"  # path of a tritonserver binary (or a wrapper script)
BACKEND_DIR_ENV = "ISODEPLOY_TRITON_BACKEND_DIR"


class TritonLoadError(IsodeployError):
    """The server refused the model (exit code 1: the repository is written but does not serve)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=ExitCode.NUMERIC)


def find_server(explicit: str | os.PathLike | None = None) -> Path:
    """``--server``, else ``$ISODEPLOY_TRITONSERVER``, else ``tritonserver`` on PATH; one line when none is found."""
    given = str(explicit) if explicit else os.environ.get(SERVER_ENV, "")
    if given:
        path = Path(given).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            source = "--server" if explicit else f"${SERVER_ENV}"
            raise IsodeployError(f"{source} '{given}' is not an executable file")
        return path.resolve()
    found = shutil.which("tritonserver")
    if not found:
        raise IsodeployError(f"--check needs a Triton server: no 'tritonserver' on PATH; pass --server PATH or set "
                             f"{SERVER_ENV} (or serve with the docker line that triton-repo prints)")
    return Path(found)


def find_backend_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """``--backend-dir``, else ``$ISODEPLOY_TRITON_BACKEND_DIR``, else None (the server's built-in default)."""
    given = str(explicit) if explicit else os.environ.get(BACKEND_DIR_ENV, "")
    if not given:
        return None
    path = Path(given).expanduser()
    if not path.is_dir():
        raise IsodeployError(f"Triton backend folder '{given}' does not exist")
    return path


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so the kernel hands out different ones)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class TritonServer:
    """One ``tritonserver`` child process; use as a context manager or call ``start``/``stop``."""

    def __init__(self, binary: Path, repo: Path, log_path: Path, *, backend_dir: Path | None = None,
                 env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.binary, self.repo, self.log_path = Path(binary), Path(os.path.abspath(repo)), Path(log_path)
        self.backend_dir, self.env, self.extra_args = backend_dir, env, tuple(extra_args)
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.proc: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def args(self) -> list[str]:
        args = [str(self.binary), f"--model-repository={self.repo}", "--model-control-mode=explicit",
                f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
                "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
                "--exit-timeout-secs=5"]
        if self.backend_dir:
            args.append(f"--backend-directory={Path(self.backend_dir).resolve()}")
        return args + list(self.extra_args)

    def start(self, timeout: float = 60.0) -> "TritonServer":
        """Launch and wait (bounded) until the server answers ``/v2/health/live``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            try:
                self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=self.env, start_new_session=True)
            except OSError as exc:
                raise IsodeployError(f"cannot start '{self.binary}': {exc.strerror or exc}") from exc
        client = TritonHttp(f"http://{self.http_url}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TritonLoadError(f"tritonserver exited with code {self.proc.returncode} before serving: "
                                      f"{self.last_error() or 'see ' + str(self.log_path)}")
            if client.live():
                return self
            time.sleep(0.1)
        self.stop()
        raise TritonLoadError(f"tritonserver did not answer on {self.http_url} within {timeout:.0f} s (log: {self.log_path})")

    def client(self, timeout: float = 30.0) -> TritonHttp:
        return TritonHttp(f"http://{self.http_url}", timeout)

    def load(self, name: str, timeout: float = 120.0) -> None:
        """Load one model; raise TritonLoadError with the server's own reason when it refuses."""
        mark = self.log_size()
        try:
            reply = self.client().load(name, timeout)
        except OSError as exc:
            raise TritonLoadError(f"Triton did not load '{name}' within {timeout:.0f} s ({exc})") from exc
        if reply.status != 200:
            raise TritonLoadError(f"Triton refused model '{name}': {self.load_reason(name, reply.error(), mark)} "
                                  f"(server log: {self.log_path})")

    def load_reason(self, name: str, api_error: str, log_offset: int = 0) -> str:
        """The most specific reason: the API's text, or (for config/layout refusals) the log's ``Poll failed`` line."""
        log = self.log_text()[log_offset:]
        poll = re.search(rf"Poll failed for model directory '{re.escape(name)}': (.*?)\"?$", log, re.M)
        if poll:
            return poll.group(1).strip()
        state = re.search(r"UNAVAILABLE state: (.*)", api_error)
        text = state.group(1) if state else api_error
        return text.strip().splitlines()[0].rstrip(";") if text.strip() else "no reason given"

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def last_error(self) -> str:
        lines = [ln for ln in self.log_text().splitlines() if ln.startswith("E") or "error" in ln.lower()]
        return lines[-1].strip() if lines else ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; also reaps the Python stubs."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # anything left in the group (stub processes) goes too
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.wait(timeout=5)

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

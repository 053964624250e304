"""Start, watch and stop the `tritonserver` binary shipped in the nvidia-pytriton wheel.

The wheel carries a real Triton (2.51) with its Python backend but no ONNX Runtime backend.
The launcher assembles a backend directory with the Python backend, the stub built for the
running Python, and the project's Python-based backends (`onnxruntime`), so that the model
repository's configs read as they do for NGC's container.
"""

import importlib.util
import os
import shutil
import signal
import subprocess  # nosec B404  # starts tritonserver, fixed argv
import sys
import time
from collections import deque
from pathlib import Path

import httpx

from contracts.credit import CREDIT_ENSEMBLE
from contracts.models import TRIAGE_ENSEMBLE
from contracts.versions import SERVED_CONFIG, published_ensembles
from contracts.xray import XRAY_ENSEMBLE
from orchestrator.settings import PROJECT_ROOT, TritonSettings

PROJECT_BACKENDS = PROJECT_ROOT / "triton_backends"  # Python-based backends, e.g. onnxruntime


class TritonStartError(RuntimeError):
    pass


def pytriton_root() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonStartError("nvidia-pytriton is not installed; run `make up` or `make test`")
    return Path(next(iter(spec.submodule_search_locations)))


def assemble_backends(target: Path) -> Path:
    """Build `<target>/python` (Python backend + stub) and `<target>/<name>` per project backend."""
    triton_dir = pytriton_root() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = triton_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonStartError(f"the wheel has no Python backend stub for Python {version}")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        triton_dir / "backends" / "python",
        target / "python",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy2(stub, target / "python" / "triton_python_backend_stub")
    for backend in sorted(p for p in PROJECT_BACKENDS.iterdir() if (p / "model.py").is_file()):
        (target / backend.name).mkdir(parents=True)
        shutil.copy2(backend / "model.py", target / backend.name / "model.py")
    return target


# What only the control plane may call: load/unload/index, model configs (they name files),
# and the logging and trace settings (they can point Triton's output at a host path).
RESTRICTED = "model-repository,model-config,logging,trace"


def restricted_flags(settings: TritonSettings) -> list[str]:
    """Triton's flags that make these APIs want the control header, when a secret is set."""
    if settings.control_secret is None:
        return []
    pair = f"{settings.control_header}={settings.control_secret.get_secret_value()}"
    return [
        f"--grpc-restricted-protocol={RESTRICTED}:{pair}",
        f"--http-restricted-api={RESTRICTED}:{pair}",
    ]


class TritonServer:
    """One tritonserver process on loopback ports; use as a context manager or call start/stop."""

    def __init__(self, settings: TritonSettings, models: tuple[str, ...] | None = None):
        self.settings = settings
        self.models = settings.models if models is None else models
        self.process: subprocess.Popen | None = None
        self._log = None

    def models_to_load(self) -> list[str]:
        """The configured models, plus every published version's ensemble of triage, the
        x-ray and credit scoring when they are among them: a Triton started after a publish
        serves the same versions as the others (which one answers whom is the orchestrator's
        routing)."""
        models = list(self.models)
        for ensemble in (TRIAGE_ENSEMBLE, XRAY_ENSEMBLE, CREDIT_ENSEMBLE):
            if ensemble in models:
                models += published_ensembles(self.settings.model_repository, ensemble)
        return models

    def command(self, backend_dir: Path) -> list[str]:
        s = self.settings
        binary = pytriton_root() / "tritonserver" / "bin" / "tritonserver"
        prefix = (
            f"support_{os.getpid()}_{s.grpc_port}_"  # two servers must not share /dev/shm names
        )
        command = [
            str(binary),
            f"--model-repository={s.model_repository}",
            f"--backend-directory={backend_dir}",
            "--model-control-mode=explicit",
            # configs/served.pbtxt where `python -m export publish` wrote one, else config.pbtxt
            f"--model-config-name={SERVED_CONFIG}",
            f"--http-address={s.host}",
            f"--http-port={s.http_port}",
            f"--grpc-address={s.host}",
            f"--grpc-port={s.grpc_port}",
            f"--metrics-address={s.host}",
            f"--metrics-port={s.metrics_port}",
            "--allow-metrics=true",
            "--backend-config=python,shm-default-byte-size=4194304",
            "--backend-config=python,shm-growth-byte-size=1048576",
            f"--backend-config=python,shm-region-prefix-name={prefix}",
            "--log-verbose=0",
        ]
        command += [f"--load-model={model}" for model in self.models_to_load()]
        command += restricted_flags(s)
        return command

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = pytriton_root().parent / "nvidia_pytriton.libs"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(libs), env.get("LD_LIBRARY_PATH")) if p
        )
        # The backend stubs import numpy, tokenizers and onnxruntime from this environment.
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        return env

    def start(self) -> "TritonServer":
        s = self.settings
        backend_dir = assemble_backends(s.work_dir / f"backends-{s.grpc_port}")
        s.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = s.log_file.open("ab")
        self.process = subprocess.Popen(  # nosec B603  # tritonserver's argv from our settings, no shell
            self.command(backend_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            start_new_session=True,  # Ctrl-C reaches us; we stop Triton in order
        )
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until the server and every requested model are ready, else fail with the log."""
        deadline_s = timeout_s or self.settings.startup_timeout_s
        deadline = time.monotonic() + deadline_s
        url = f"http://{self.settings.http_url}"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise TritonStartError(
                        f"tritonserver exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                if self._ready(client, url):
                    return
                time.sleep(0.25)
        raise TritonStartError(f"Triton not ready after {deadline_s} s:\n{self.log_tail()}")

    def _ready(self, client: httpx.Client, url: str) -> bool:
        try:
            if client.get(f"{url}/v2/health/ready").status_code != 200:
                return False
            return all(
                client.get(f"{url}/v2/models/{m}/ready").status_code == 200 for m in self.models
            )
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM lets in-flight requests finish and models unload; SIGKILL after the timeout."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            with self.settings.log_file.open(errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except OSError:
            return "(no log)"

    def __enter__(self) -> "TritonServer":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

"""Triton's model control (explicit mode) over gRPC: the repository index, load and unload.

Every call carries a deadline, and the restricted-protocol header when one is configured
(Triton started with `--grpc-restricted-protocol=model-repository:<header>=<secret>`).
"""

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import tritonclient.grpc.aio as aio
from tritonclient.utils import InferenceServerException

from orchestrator.triton.model_config import load_json, read_config


class ControlUnavailable(RuntimeError):
    """Triton cannot be reached, or did not answer in time."""


class ControlFailed(RuntimeError):
    """Triton answered but refused or failed the operation; the message says why.

    The message is Triton's own text: it may name host paths, so it is logged, never sent on.
    """


@dataclass(frozen=True)
class ModelState:
    name: str
    version: str
    state: str
    reason: str


TRANSIENT_STATES = ("LOADING", "UNLOADING")
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"


class ModelControl:
    def __init__(
        self,
        url: str,
        repository: Path | None = None,
        *,
        call_timeout_s: float = 10.0,
        load_timeout_s: float = 120.0,
        headers: dict[str, str] | None = None,
    ):
        """`repository`: Triton's model repository, when this process can read it too."""
        self.url = url
        self._client = aio.InferenceServerClient(url)
        self.repository = repository
        self.call_timeout_s = call_timeout_s
        self.load_timeout_s = load_timeout_s
        # Triton's gRPC frontend wants a restricted protocol's header under this prefix.
        self._headers = {f"{GRPC_HEADER_PREFIX}{k}": v for k, v in (headers or {}).items()} or None

    async def index(self) -> list[ModelState]:
        """Every model of the repository, loaded or not, one entry per version Triton knows."""
        index = await self._call(
            self._client.get_model_repository_index(
                headers=self._headers, as_json=True, client_timeout=self.call_timeout_s
            )
        )
        return [
            ModelState(
                m["name"], m.get("version", ""), m.get("state", "UNAVAILABLE"), m.get("reason", "")
            )
            for m in index.get("models", [])
        ]

    def repository_config(self, model: str) -> dict | None:
        """The model's config as Triton reads it (model_config.config_file), as the load API's
        JSON, when this process can read the repository."""
        folder = self.repository / model if self.repository else None
        if folder is None or not (folder / "config.pbtxt").is_file():
            return None
        return json.loads(load_json(read_config(folder)))

    async def served_config(self, model: str) -> dict | None:
        """The config Triton runs the model with; None when it is not loaded."""
        try:
            answer = await self._call(
                self._client.get_model_config(
                    model, headers=self._headers, as_json=True, client_timeout=self.call_timeout_s
                )
            )
        except ControlFailed:
            return None
        return answer.get("config")

    async def load(self, model: str, config: dict | None) -> None:
        """Load (or reload) `model` with `config` (the load API's JSON), or its own files.

        Versions unload in the background after a load returns; a second load that starts
        before they finish can leave the old version up, so each action waits for the
        model's versions to settle before and after.
        """
        await self.settle(model)
        await self._call(
            self._client.load_model(
                model,
                headers=self._headers,
                config=json.dumps(config) if config else None,
                client_timeout=self.load_timeout_s,
            )
        )
        await self.settle(model)

    async def unload(self, model: str, unload_dependents: bool) -> None:
        """Ask Triton to unload; it answers before the model's memory is freed (poll after)."""
        await self.settle(model)
        await self._call(
            self._client.unload_model(
                model,
                headers=self._headers,
                unload_dependents=unload_dependents,
                client_timeout=self.load_timeout_s,
            )
        )

    async def settle(self, model: str, timeout_s: float = 60.0) -> bool:
        """Wait until no version of `model` is loading or unloading; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [m.state for m in await self.index() if m.name == model]
            if not any(state in TRANSIENT_STATES for state in states):
                return True
            await asyncio.sleep(0.1)
        return False

    async def close(self) -> None:
        await self._client.close()

    async def _call(self, awaitable):
        try:
            return await awaitable
        except InferenceServerException as error:
            status, message = error.status() or "", error.message() or ""
            if "protocol is restricted" in message:  # a server that wants the control header
                raise ControlFailed(message) from None
            if "UNAVAILABLE" in status or "DEADLINE" in status:
                raise ControlUnavailable(error.message() or str(error)) from None
            raise ControlFailed(error.message() or str(error)) from None


STUB_NAME = "triton_python_backend_stub"


@dataclass(frozen=True)
class ProcessReading:
    """Triton's process tree on this host: its total RSS and its backend stubs per model."""

    tree_rss_bytes: int
    stubs: dict[str, int]  # model -> stub processes
    stub_rss_bytes: dict[str, int]  # model -> their RSS

    def count(self, model: str) -> int:
        return self.stubs.get(model, 0)


class TritonProcesses:
    """Reads tritonserver's process tree through psutil, when Triton runs on this host.

    Each Python-backend model instance runs in its own `triton_python_backend_stub` child;
    its command line names the instance (`<model>_<group>_<index>`), hence the model.
    Blocking (/proc reads): call it from a thread.
    """

    def __init__(self, grpc_port: int):
        self.grpc_port = grpc_port

    def server(self):
        import psutil

        found = []
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] == "tritonserver":
                found.append(process)
        mine = [p for p in found if f"--grpc-port={self.grpc_port}" in (p.info["cmdline"] or [])]
        if mine:
            return mine[0]
        return found[0] if len(found) == 1 else None

    def read(self, models: list[str]) -> ProcessReading | None:
        import psutil

        server = self.server()
        if server is None:
            return None
        try:
            tree = [server, *server.children(recursive=True)]
        except psutil.Error:
            return None
        total, stubs, stub_rss = 0, dict.fromkeys(models, 0), dict.fromkeys(models, 0)
        for process in tree:
            try:
                rss = process.memory_info().rss
                name = process.name()
                cmdline = process.cmdline() if name == STUB_NAME else []
            except psutil.Error:  # it exited while we looked
                continue
            total += rss
            owner = _stub_model(cmdline, models)
            if owner is not None:
                stubs[owner] += 1
                stub_rss[owner] += rss
        return ProcessReading(total, stubs, stub_rss)


def _stub_model(cmdline: list[str], models: list[str]) -> str | None:
    """The model a stub serves: its instance-name argument is `<model>_<group>_<index>`."""
    for argument in cmdline[1:]:
        for model in models:
            rest = argument.removeprefix(model + "_")
            if rest != argument and rest.replace("_", "").isdigit():
                return model
    return None

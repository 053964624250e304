"""Triton's model control (explicit mode) over gRPC: the repository index, load and unload."""

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import tritonclient.grpc.aio as aio
from tritonclient.utils import InferenceServerException

from orchestrator.triton.model_config import load_json, read_config


class ControlUnavailable(RuntimeError):
    """Triton cannot be reached."""


class ControlFailed(RuntimeError):
    """Triton answered but refused or failed the operation; the message says why."""


@dataclass(frozen=True)
class ModelState:
    name: str
    version: str
    state: str
    reason: str


TRANSIENT_STATES = ("LOADING", "UNLOADING")


class ModelControl:
    def __init__(self, url: str, repository: Path | None = None):
        """`repository`: Triton's model repository, when this process can read it too."""
        self._client = aio.InferenceServerClient(url)
        self.repository = repository

    async def index(self) -> list[ModelState]:
        """Every model of the repository, loaded or not, one entry per version Triton knows."""
        index = await self._call(self._client.get_model_repository_index(as_json=True))
        return [
            ModelState(
                m["name"], m.get("version", ""), m.get("state", "UNAVAILABLE"), m.get("reason", "")
            )
            for m in index.get("models", [])
        ]

    async def load(self, model: str, version: int | None, config: dict | None) -> None:
        """Load (or reload) `model`; `version` serves only that version; `config` overrides.

        Versions unload in the background after a load returns; a second load that starts
        before they finish can leave the old version up, so each action waits for the
        model's versions to settle before and after.
        """
        await self.settle(model)
        # Triton reloads a model from its repository only when the files changed, so a model
        # running under an override would keep it: send the repository's config instead.
        config = config or self._repository_config(model)
        if version is not None:
            if config is None:
                await self._call(self._client.load_model(model))  # its own config, to amend
                config = (await self._call(self._client.get_model_config(model, as_json=True)))[
                    "config"
                ]
            config = {**config, "version_policy": {"specific": {"versions": [version]}}}
        await self._call(
            self._client.load_model(model, config=json.dumps(config) if config else None)
        )
        await self.settle(model)

    def _repository_config(self, model: str) -> dict | None:
        folder = self.repository / model if self.repository else None
        if folder is None or not (folder / "config.pbtxt").is_file():
            return None
        return json.loads(load_json(read_config(folder)))

    async def unload(self, model: str, unload_dependents: bool) -> None:
        await self.settle(model)
        await self._call(self._client.unload_model(model, unload_dependents=unload_dependents))
        await self.settle(model)

    async def settle(self, model: str, timeout_s: float = 60.0) -> None:
        """Wait until no version of `model` is loading or unloading."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [m.state for m in await self.index() if m.name == model]
            if not any(state in TRANSIENT_STATES for state in states):
                return
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        await self._client.close()

    async def _call(self, awaitable):
        try:
            return await awaitable
        except InferenceServerException as error:
            status = error.status() or ""
            if "UNAVAILABLE" in status or "DEADLINE" in status:
                raise ControlUnavailable(error.message() or str(error)) from None
            raise ControlFailed(error.message() or str(error)) from None

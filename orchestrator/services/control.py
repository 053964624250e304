"""The control plane's work: model status, load and unload with a checked config, each audited.

A load's `config` is an override merged onto the repository's config.pbtxt, limited to an
allow-list of fields: anything else (a model file, a backend, parameters naming host paths)
is refused, naming the field. Triton's own error text can name host paths: it goes to the
log under a reference id, and the caller and the audit get the reference.

Triton answers an unload before the model's memory is freed, so load and unload poll until
the repository index and the model's backend processes agree with what was asked, then
report per model what really happened; an action that does not settle in time is audited
as "timeout" and answered 503.
"""

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import tritonclient.grpc.model_config_pb2 as mc
from google.protobuf import json_format
from google.protobuf.json_format import ParseError
from starlette.concurrency import run_in_threadpool

from contracts.credit import CREDIT_ENSEMBLE, CREDIT_MODEL
from contracts.models import TRIAGE_ENSEMBLE
from contracts.versions import versioned_model_name
from contracts.xray import XRAY_CLASSIFIER, XRAY_ENSEMBLE
from orchestrator.api.keycache import Caller
from orchestrator.errors import ControlRefused, ControlTimeout, DependencyUnavailable, ModelNotFound
from orchestrator.metrics import Metrics
from orchestrator.schemas.control import (
    ControlResult,
    LoadRequest,
    MemoryChange,
    ModelReport,
    ModelStatus,
    ReplicaAction,
    ReplicaServing,
    UnloadRequest,
)
from orchestrator.services import audit
from orchestrator.services.watchdog import host_memory_used_bytes
from orchestrator.triton.control import (
    TRANSIENT_STATES,
    ControlFailed,
    ControlUnavailable,
    ModelControl,
    ModelState,
    ProcessReading,
    TritonProcesses,
)
from orchestrator.triton.replicas import Replicas

log = logging.getLogger(__name__)

LEAF = None  # any value; its type is checked when the merged config is parsed
MAX_INSTANCES = 8
QUEUE_POLICY = dict.fromkeys(
    ("timeout_action", "default_timeout_microseconds", "allow_timeout_override", "max_queue_size")
)
# The override fields an admin may set, as nested dicts; `instance_group` is checked apart.
ALLOWED: dict[str, Any] = {
    "version_policy": {"latest": {"num_versions": LEAF}, "all": {}, "specific": {"versions": LEAF}},
    "dynamic_batching": {
        "max_queue_delay_microseconds": LEAF,
        "preferred_batch_size": LEAF,
        "preserve_ordering": LEAF,
        "priority_levels": LEAF,
        "default_priority_level": LEAF,
        "default_queue_policy": QUEUE_POLICY,
    },
    "instance_group": LEAF,
}
POLL_S = 0.2
# The versioned models (their ensembles) and the steps whose versions a served version pins
# (export/publish.py, export/step_publish.py).
VERSIONED_STEPS = {
    TRIAGE_ENSEMBLE: ("ticket_encoder", "ticket_classifier", "ticket_intent"),
    XRAY_ENSEMBLE: (XRAY_CLASSIFIER,),
    CREDIT_ENSEMBLE: (CREDIT_MODEL,),
}
# The command that publishes a version of each (what a refusal tells the caller to run)
PUBLISH_COMMANDS = {
    TRIAGE_ENSEMBLE: "export publish",
    XRAY_ENSEMBLE: "export xray-publish",
    CREDIT_ENSEMBLE: "export credit-publish",
}


def _refuse(path: str, reason: str) -> ControlRefused:
    return ControlRefused(f"{path}: {reason}", param=path, code="config_field_not_allowed")


def _check(value: Any, spec: dict, path: str) -> None:
    if not isinstance(value, dict):
        raise _refuse(path, "must be an object")
    for key, inner in value.items():
        if key not in spec:
            allowed = ", ".join(spec) or "nothing"
            raise _refuse(f"{path}.{key}", f"not an allowed config field (allowed: {allowed})")
        if spec[key] is not LEAF:
            _check(inner, spec[key], f"{path}.{key}")


def _instance_groups(groups: Any, base: list[dict]) -> list[dict]:
    """Each group keeps everything but its count; the kind may be restated, not changed."""
    if not isinstance(groups, list) or len(groups) != len(base) or not base:
        raise _refuse("config.instance_group", f"give one entry per existing group ({len(base)})")
    merged = []
    for i, (group, original) in enumerate(zip(groups, base, strict=True)):
        path = f"config.instance_group.{i}"
        if not isinstance(group, dict):
            raise _refuse(path, "must be an object")
        for key in group:
            if key not in ("count", "kind"):
                raise _refuse(f"{path}.{key}", "not an allowed config field (allowed: count, kind)")
        count = group.get("count", original.get("count", 1))
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_INSTANCES:
            raise _refuse(f"{path}.count", f"must be an integer from 1 to {MAX_INSTANCES}")
        if "kind" in group and group["kind"] != original.get("kind", "KIND_AUTO"):
            raise _refuse(f"{path}.kind", f"cannot change ({original.get('kind', 'KIND_AUTO')})")
        merged.append({**original, "count": count})
    return merged


def merge_override(base: dict, override: dict) -> dict:
    """`base` with the allowed fields of `override` merged in; ControlRefused names a bad one."""
    _check({k: v for k, v in override.items() if k != "instance_group"}, ALLOWED, "config")
    merged = dict(base)
    if "version_policy" in override:
        merged["version_policy"] = override["version_policy"]
    if "dynamic_batching" in override:
        batching = {**base.get("dynamic_batching", {}), **override["dynamic_batching"]}
        if "default_queue_policy" in override["dynamic_batching"]:
            batching["default_queue_policy"] = {
                **base.get("dynamic_batching", {}).get("default_queue_policy", {}),
                **override["dynamic_batching"]["default_queue_policy"],
            }
        merged["dynamic_batching"] = batching
    if "instance_group" in override:
        merged["instance_group"] = _instance_groups(
            override["instance_group"], base.get("instance_group", [])
        )
    try:  # types and enum names, checked by Triton's own schema
        json_format.ParseDict(merged, mc.ModelConfig())
    except ParseError as error:
        raise ControlRefused(f"config: {error}", param="config", code="invalid_config") from None
    return merged


def _instances(config: dict | None) -> int | None:
    if config is None:
        return None
    if config.get("platform") == "ensemble" or "ensemble_scheduling" in config:
        return 0
    groups = config.get("instance_group") or [{"count": 1}]
    return sum(int(g.get("count", 1)) for g in groups)


def _composing(config: dict | None) -> list[str]:
    steps = (config or {}).get("ensemble_scheduling", {}).get("step", [])
    return [s["model_name"] for s in steps if "model_name" in s]


def _summary_state(states: list[ModelState]) -> str:
    names = [s.state for s in states]
    for state in ("READY", *TRANSIENT_STATES):
        if state in names:
            return state
    return names[0] if names else "UNAVAILABLE"


@dataclass
class _Snapshot:
    states: dict[str, list[ModelState]]
    processes: ProcessReading | None
    host_bytes: int


class ControlService:
    def __init__(
        self,
        control: ModelControl,
        processes: TritonProcesses | None,
        sessions,
        metrics: Metrics,
        *,
        wait_s: float,
        replicas: Replicas | None = None,
    ):
        self.control, self.processes, self.sessions = control, processes, sessions
        self.replicas = replicas  # several Tritons: the version rollout loads on each
        self.metrics, self.wait_s = metrics, wait_s
        self._lock = asyncio.Lock()  # one load or unload at a time: they poll the same state

    async def status(self) -> list[ModelStatus]:
        return [
            ModelStatus(name=s.name, version=s.version, state=s.state, reason=s.reason)
            for s in await self._index()
        ]

    async def load(self, caller: Caller, data: LoadRequest) -> ControlResult:
        asked = data.model_dump(exclude_none=True)
        async with self._lock:
            await self._known(data.model)
            config = await self._config_to_send(data)
            models = [data.model, *_composing(config)]
            result = await self._audited(
                caller, "load", data.model, asked, models,
                operation=lambda: self.control.load(data.model, config),
                done=lambda snap: self._loaded(snap, data.model, config),
            )  # fmt: skip
            return await self._on_other_replicas(
                result, "load", lambda control: control.load(data.model, config)
            )

    async def unload(self, caller: Caller, data: UnloadRequest) -> ControlResult:
        async with self._lock:
            await self._known(data.model)
            dependents = await self._only_needed_by(data.model) if data.unload_dependents else []
            models = [data.model, *dependents]

            async def unload(control: ModelControl) -> None:
                # Triton's unload_dependents leaves composing models that were loaded by
                # name (--load-model, or an earlier load) up: unload those ourselves.
                await control.unload(data.model, data.unload_dependents)
                for dependent in dependents:
                    await control.unload(dependent, False)

            result = await self._audited(
                caller, "unload", data.model, data.model_dump(), models,
                operation=lambda: unload(self.control),
                done=lambda snap: all(self._freed(snap, m) for m in models),
            )  # fmt: skip
            return await self._on_other_replicas(result, "unload", unload)

    async def _on_other_replicas(self, result: ControlResult, action: str, operation):
        """The action done on this Triton, done on every other replica too, each one's outcome
        added to the result (a failure there is reported and logged, not raised: this one's
        change stands)."""
        if self.replicas is None:
            return result
        outcomes = []
        for address, control in (await self._replica_controls()).items():
            if address == self.control.url:
                continue
            detail = None
            try:
                await operation(control)
            except ControlUnavailable:
                detail = "unreachable"
            except ControlFailed as failure:
                reference = uuid.uuid4().hex[:12]
                log.warning("Triton %s refused to %s %r (reference %s): %s", address, action,
                            result.model, reference, failure)  # fmt: skip
                detail = f"Triton refused (reference {reference})"
            outcome = "ok" if detail is None else "error"
            outcomes.append(ReplicaAction(replica=address, result=outcome, detail=detail))
        return result.model_copy(update={"replicas": outcomes})

    async def serve_version(self, model: str, version: int) -> list[ReplicaServing]:
        """Have every Triton replica serve `version` of `model` (a VERSIONED_STEPS ensemble)
        beside the versions it serves, as the publish command laid it out: the pinned steps
        and the base ensemble re-read their served configs (Triton keeps serving the old while
        the new loads), then the version's own ensemble loads. Loading what is loaded changes
        nothing. Refused (409) when a replica cannot serve it, e.g. it was not published; 503
        when a replica is unreachable. Returns what each replica serves now."""
        async with self._lock:
            controls = await self._replica_controls()
            return [
                await self._serve_on(address, control, model, version)
                for address, control in controls.items()
            ]

    async def _replica_controls(self) -> dict[str, ModelControl]:
        if self.replicas is None:
            return {self.control.url: self.control}
        try:
            return await self.replicas.controls()
        except OSError as error:  # a DNS name that does not resolve now
            raise DependencyUnavailable(
                f"the Triton replicas could not be found ({error}); the version was not loaded"
            ) from error

    async def _serve_on(self, address: str, control: ModelControl, served: str, version: int):
        ensemble = versioned_model_name(served, version)
        publish = PUBLISH_COMMANDS[served]
        for model in (*VERSIONED_STEPS[served], served, ensemble):
            try:
                await control.load(model, None)
            except ControlUnavailable as error:
                raise DependencyUnavailable(
                    f"Triton replica {address} is unreachable; version {version} was not "
                    "loaded there, and its registration or canary was not done"
                ) from error
            except ControlFailed as failure:
                reference = uuid.uuid4().hex[:12]
                log.warning("Triton %s could not load %r (reference %s): %s", address, model,
                            reference, failure)  # fmt: skip
                raise ControlRefused(
                    f"Triton replica {address} cannot serve version {version} of "
                    f"{served!r}: loading {model!r} failed (reference {reference}); "
                    "publish the candidate into Triton's repository first "
                    f"(`python -m {publish}`)",
                    param="version",
                    code="version_not_servable",
                ) from failure
        ready = [
            s.version for s in await control.index() if s.name == ensemble and s.state == "READY"
        ]
        return ReplicaServing(replica=address, model=ensemble, ready=bool(ready))

    # ---- the steps ------------------------------------------------------------------------
    async def _only_needed_by(self, model: str) -> list[str]:
        """The composing models of `model` that no other loaded model uses."""
        config = self.control.repository_config(model) or await self._guard(
            self.control.served_config(model)
        )
        wanted = _composing(config)
        loaded = {s.name for s in await self._index() if s.state == "READY"} - {model}
        for other in loaded:
            used = set(_composing(self.control.repository_config(other)))
            wanted = [m for m in wanted if m not in used]
        return wanted

    async def _config_to_send(self, data: LoadRequest) -> dict | None:
        # Triton reloads a model from its repository only when the files changed, so a model
        # running under an override would keep it: send the repository's config instead.
        base = self.control.repository_config(data.model)
        if base is None and (data.config or data.version is not None):
            base = await self._guard(self.control.served_config(data.model))
            if base is None:
                raise ControlRefused(
                    f"{data.model!r} must be loaded, or its repository readable here, "
                    "to take a config or version",
                    param="config" if data.config else "version",
                )
        config = merge_override(base, data.config) if data.config else base
        if data.version is not None:
            config = {**config, "version_policy": {"specific": {"versions": [data.version]}}}
        return config

    async def _audited(self, caller, action, model, asked, models, *, operation, done):
        before = await self._snapshot(models)
        error = reference = None
        try:
            await operation()
        except ControlUnavailable:
            error = "Triton is unreachable"
        except ControlFailed as failure:
            reference = uuid.uuid4().hex[:12]
            log.warning("Triton refused to %s %r (reference %s): %s", action, model, reference,
                        failure)  # fmt: skip
            error = f"Triton could not {action} {model!r} (reference {reference})"
        if error is not None:
            await run_in_threadpool(self._audit, caller, action, model, asked, "error", error)
            if reference is None:
                raise DependencyUnavailable(f"{error}; the {action} was not done")
            raise ControlRefused(
                f"{error}; the detail is in the orchestrator's log",
                param="model",
                code=f"{action}_failed",
            )
        settled, after = await self._wait(models, done)
        result = self._result(model, action, models, before, after, settled)
        self.metrics.model_memory_delta.labels(model, action).set(result.memory.delta_bytes)
        outcome = "ok" if settled else "timeout"
        report = {"memory": result.memory.model_dump(), "models": [
            r.model_dump() for r in result.report]}  # fmt: skip
        await run_in_threadpool(
            self._audit, caller, action, model, asked, outcome, json.dumps(report)
        )
        if not settled:
            states = ", ".join(f"{r.model}: {r.state_after}, {r.processes_after} processes"
                               for r in result.report)  # fmt: skip
            raise ControlTimeout(
                f"the {action} of {model!r} did not finish within {self.wait_s:g} s ({states}); "
                "see GET /v1/model/audit",
                param="model",
            )
        return result

    async def _wait(self, models: list[str], done) -> tuple[bool, _Snapshot]:
        deadline = time.monotonic() + self.wait_s
        while True:
            snap = await self._snapshot(models)
            if done(snap):
                return True, snap
            if time.monotonic() >= deadline:
                return False, snap
            await asyncio.sleep(POLL_S)

    def _freed(self, snap: _Snapshot, model: str) -> bool:
        states = [s.state for s in snap.states.get(model, [])]
        if any(s in ("READY", *TRANSIENT_STATES) for s in states):
            return False
        return snap.processes is None or snap.processes.count(model) == 0

    def _loaded(self, snap: _Snapshot, model: str, config: dict | None) -> bool:
        states = [s.state for s in snap.states.get(model, [])]
        if "READY" not in states or any(s in TRANSIENT_STATES for s in states):
            return False
        per_version = _instances(config)
        if snap.processes is None or per_version is None:
            return True
        # A reload starts the new instances before the old ones go: wait for those to end.
        return snap.processes.count(model) <= per_version * states.count("READY")

    def _result(self, model, action, models, before: _Snapshot, after: _Snapshot, settled):
        if before.processes is not None and after.processes is not None:
            scope = "triton_processes"
            b, a = before.processes.tree_rss_bytes, after.processes.tree_rss_bytes
        else:
            scope, b, a = "host", before.host_bytes, after.host_bytes
        report = []
        for name in models:
            pb, pa = before.processes, after.processes
            rb = pb.stub_rss_bytes.get(name, 0) if pb else None
            ra = pa.stub_rss_bytes.get(name, 0) if pa else None
            report.append(ModelReport(
                model=name,
                state_before=_summary_state(before.states.get(name, [])),
                state_after=_summary_state(after.states.get(name, [])),
                processes_before=pb.count(name) if pb else None,
                processes_after=pa.count(name) if pa else None,
                memory_before_bytes=rb,
                memory_after_bytes=ra,
                freed_bytes=None if rb is None or ra is None else max(rb - ra, 0),
            ))  # fmt: skip
        return ControlResult(
            model=model,
            action=action,
            result="ok" if settled else "timeout",
            models=[
                ModelStatus(name=s.name, version=s.version, state=s.state, reason=s.reason)
                for s in after.states.get(model, [])
            ],
            memory=MemoryChange(
                scope=scope,
                before_bytes=b,
                after_bytes=a,
                delta_bytes=a - b,
                freed_bytes=max(b - a, 0),
            ),
            report=report,
        )

    # ---- reading Triton -------------------------------------------------------------------
    async def _snapshot(self, models: list[str]) -> _Snapshot:
        states: dict[str, list[ModelState]] = {m: [] for m in models}
        for state in await self._index():
            if state.name in states:
                states[state.name].append(state)
        processes = None
        if self.processes is not None:
            processes = await run_in_threadpool(self.processes.read, models)
        return _Snapshot(states, processes, await run_in_threadpool(host_memory_used_bytes))

    async def _known(self, model: str) -> None:
        if model not in {s.name for s in await self._index()}:
            raise ModelNotFound(f"no model {model!r} in Triton's repository", param="model")

    async def _index(self) -> list[ModelState]:
        return await self._guard(self.control.index())

    async def _guard(self, awaitable):
        try:
            return await awaitable
        except ControlUnavailable:
            raise DependencyUnavailable("Triton is unreachable") from None

    def _audit(self, caller: Caller, action, model, asked, result: str, detail: str | None):
        with self.sessions() as session:
            audit.record(session, caller, action, model, asked, result, detail)
            session.commit()

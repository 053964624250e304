"""Retraining started through the API (`POST /v1/model/retrain`), run as a job with progress.

A run is the commands an operator would type, as child processes of the orchestrator (one run
at a time; the machine's cores are the training's). Triage:

    python -m export dataset --database-url <the orchestrator's>     (a fresh snapshot)
    python -m export retrain [options]                               (the candidate and its gate)
    python -m export publish <its card>                              (only when asked and passed)

The x-ray (`"model": "xray_diagnosis"`), whose retrain reads the confirmations itself:

    python -m export xray-retrain --database-url <the orchestrator's> [options]
    python -m export xray-publish <its card>                         (only when asked and passed)

Credit scoring (`"model": "credit_scoring"`), whose retrain reads the lenders' outcomes:

    python -m export credit-retrain --database-url <the orchestrator's> [options]
    python -m export credit-publish <its card>                       (only when asked and passed)

Each `== i/n message` line retrain prints becomes the run's progress; the last lines of output
are kept; the end is `passed` (with the model card and, if published, the triage version to
register next), `refused` (with the gate's report and reasons) or `failed` (a command that
could not run, with its output). A run the orchestrator was stopped in the middle of is
`failed` at the next start. Training needs the export extra (torch), which the orchestrator's
own image does not carry: where `export` cannot be imported the request is refused (503) and
retraining runs as its own job (`python -m export ...` from the export image).
"""

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import re
import socket
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from contracts.credit import CREDIT_ENSEMBLE
from contracts.models import TRIAGE_ENSEMBLE
from contracts.xray import XRAY_ENSEMBLE
from orchestrator.api.keycache import Caller
from orchestrator.db.models import RetrainRun, utcnow
from orchestrator.errors import Conflict, DependencyUnavailable
from orchestrator.services import audit

log = logging.getLogger(__name__)

STEP = re.compile(r"^== (\d+)/(\d+) (.+)$")
WROTE = re.compile(r"^wrote (\S+\.json)$")
PUBLISHED = re.compile(r"^published (?:triage|xray|credit) version (\d+) ")
TAIL_LINES = 40
LINE_LIMIT = 1 << 20  # bytes of one output line read at most
HOST = socket.gethostname()[:200]  # where a run's processes live
# A run still active after this is taken as lost (its host went away without a word): the
# full recipe takes about an hour on 2 cores.
STALE_AFTER = timedelta(hours=12)
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class RetrainOptions:
    """What the model's retrain command is asked (None: its own default)."""

    model: str = TRIAGE_ENSEMBLE
    epochs: int | None = None
    train_per_label: int | None = None
    test_limit: int | None = None
    publish: bool = False

    def argv(self) -> list[str]:
        flags = {
            "--epochs": self.epochs,
            "--train-per-label": self.train_per_label,
            "--test-limit": self.test_limit,
        }
        return [
            part
            for flag, value in flags.items()
            if value is not None
            for part in (flag, str(value))
        ]


# The models whose retrain reads the database itself: (retrain, publish) commands
ONE_STEP = {
    XRAY_ENSEMBLE: ("xray-retrain", "xray-publish"),
    CREDIT_ENSEMBLE: ("credit-retrain", "credit-publish"),
}


@dataclass(frozen=True)
class Recipe:
    """The commands of a run, as `python -m export` arguments."""

    snapshot: list[str] | None  # a training snapshot first (triage's), or nothing
    retrain: list[str]
    publish: str  # the command that publishes a passed card

    @classmethod
    def of(cls, options: RetrainOptions, database_url: str) -> "Recipe":
        if options.model in ONE_STEP:
            retrain, publish = ONE_STEP[options.model]
            return cls(None, [retrain, "--database-url", database_url, *options.argv()], publish)
        snapshot = ["dataset", "--database-url", database_url]
        return cls(snapshot, ["retrain", *options.argv()], "publish")


class RetrainRuns:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        database_url: str,
        command: Sequence[str] = (sys.executable, "-m", "export"),
    ):
        """`command`: how `export` is started (tests give a stand-in)."""
        self.sessions, self.database_url, self.command = sessions, database_url, list(command)
        self._task: asyncio.Task | None = None

    def available(self) -> bool:
        return self.command[1:3] != ["-m", "export"] or bool(importlib.util.find_spec("torch"))

    async def start(self, caller: Caller, options: RetrainOptions) -> RetrainRun:
        """Queue a run and start it; 409 while another runs, 503 where training is not
        installed. Audited (`retrain`)."""
        if not self.available():
            raise DependencyUnavailable(
                "retraining is not installed where the orchestrator runs (no torch): run "
                "`python -m export retrain` from the export image or a Job"
            )
        run = await asyncio.to_thread(self._queue, caller, options)
        self._task = asyncio.create_task(self._run(run.id, options))
        return run

    def recover(self) -> int:
        """At start: this host's runs left queued or running by a stopped orchestrator have
        failed (another host's may still be running; STALE_AFTER ends those)."""
        return self._fail_where(RetrainRun.host == HOST, "the orchestrator stopped during the run")

    def _fail_where(self, condition, message: str) -> int:
        with self.sessions() as session:
            done = session.execute(
                update(RetrainRun)
                .where(RetrainRun.status.in_(ACTIVE), condition)
                .values(status="failed", message=message, finished_at=utcnow())
            )
            session.commit()
            return done.rowcount or 0

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ---- the run ------------------------------------------------------------------------------
    def _queue(self, caller: Caller, options: RetrainOptions) -> RetrainRun:
        stale = utcnow() - STALE_AFTER
        self._fail_where(RetrainRun.created_at < stale, "no end seen within the time allowed")
        with self.sessions() as session:
            busy = session.scalar(select(RetrainRun.id).where(RetrainRun.status.in_(ACTIVE)))
            asked = {**options.__dict__}
            if busy is not None or (self._task is not None and not self._task.done()):
                detail = f"retrain run {busy} is in progress; one run at a time"
                audit.record(session, caller, "retrain", options.model, asked, "error", detail)
                session.commit()
                raise Conflict(detail, param=None, code="retrain_running")
            run = RetrainRun(key_id=caller.id, status="queued", options=asked, host=HOST)
            session.add(run)
            session.flush()
            audit.record(session, caller, "retrain", options.model, {**asked, "run": run.id})
            session.commit()
            session.refresh(run)
            session.expunge(run)
            return run

    async def _run(self, run_id: int, options: RetrainOptions) -> None:
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        try:
            recipe = Recipe.of(options, self.database_url)
            await self._update(run_id, status="running", started_at=utcnow(), message="starting")
            if recipe.snapshot is not None:
                await self._update(run_id, message="making a snapshot")
                if await self._command(run_id, recipe.snapshot, tail) != 0:
                    return await self._finish(run_id, "failed", tail, "export dataset failed")
            found: dict = {}
            code = await self._command(run_id, recipe.retrain, tail, found)
            report_path = found.get("report")
            report = _read(report_path)
            if code not in (0, 1) or report is None:
                failed = f"export {recipe.retrain[0]} failed"
                return await self._finish(run_id, "failed", tail, failed)
            if code == 1:
                refused = "the gate refused the candidate"
                return await self._finish(
                    run_id, "refused", tail, refused, report=report, report_path=report_path
                )
            published = None
            if options.publish:
                code = await self._command(run_id, [recipe.publish, report_path], tail, found)
                if code != 0:
                    return await self._finish(
                        run_id,
                        "failed",
                        tail,
                        f"export {recipe.publish} failed",
                        report=report,
                        report_path=report_path,
                    )
                published = found.get("published")
            message = "passed the gate" + (
                f"; published as version {published}" if published else ""
            )
            await self._finish(
                run_id,
                "passed",
                tail,
                message,
                report=report,
                report_path=report_path,
                published=published,
            )
        except asyncio.CancelledError:
            await asyncio.shield(
                self._finish(run_id, "failed", tail, "stopped with the orchestrator")
            )
            raise
        except Exception as error:  # the run fails, the orchestrator does not
            log.exception("retrain run %s failed", run_id)
            await self._finish(run_id, "failed", tail, f"{error.__class__.__name__}: {error}")

    async def _command(self, run_id: int, args: list[str], tail, found: dict | None = None) -> int:
        process = await asyncio.create_subprocess_exec(
            *self.command,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "TQDM_DISABLE": "1"},  # the `== i/n` lines are the progress
            limit=LINE_LIMIT,
        )
        try:
            async for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip().split("\r")[-1]
                if not line.strip():
                    continue
                tail.append(line)
                await self._read_line(run_id, line, found)
            return await process.wait()
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise

    async def _read_line(self, run_id: int, line: str, found: dict | None) -> None:
        if step := STEP.match(line):
            await self._update(run_id, step=int(step[1]), steps=int(step[2]), message=step[3][:500])
        elif found is not None and (wrote := WROTE.match(line)):
            found["report"] = wrote[1]
        elif found is not None and (published := PUBLISHED.match(line)):
            found["published"] = int(published[1])

    async def _finish(self, run_id: int, status: str, tail, message: str, **fields) -> None:
        await self._update(
            run_id,
            status=status,
            message=message[:500],
            log_tail="\n".join(tail),
            finished_at=utcnow(),
            **fields,
        )

    async def _update(self, run_id: int, **values) -> None:
        def write() -> None:
            with self.sessions() as session:
                session.execute(update(RetrainRun).where(RetrainRun.id == run_id).values(**values))
                session.commit()

        await asyncio.to_thread(write)


def _read(path: str | None) -> dict | None:
    if path is None or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text())
    except ValueError:
        return None

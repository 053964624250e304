"""E-mail parsing in worker processes, off the event loop and under a hard time cap.

Python's e-mail parser is pure Python and CPU-bound: in a thread it would still hold the GIL
and stall every other request. Each worker is a long-lived process (forked from a clean fork
server, not from the threaded server) that parses one message at a time; one that runs past
the time cap is killed and replaced, so a hostile message costs at most that much CPU.
"""

import asyncio
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from orchestrator.services.email_intake import (
    EmailLimits,
    EmailTooComplex,
    MalformedEmail,
    ParsedEmail,
    parse_email,
)

STARTUP_TIMEOUT_S = 60.0  # a busy machine may take a while to fork and import


class ParsersUnavailable(RuntimeError):
    """No worker process could be started: the server's fault, not the message's."""


def _serve(connection: Connection, limits: EmailLimits) -> None:
    """A worker's loop: raw bytes in, ("ok", ParsedEmail) or (error class name, text) out."""
    connection.send_bytes(b"ready")  # imports are done: the time cap measures parsing only
    while True:
        try:
            raw = connection.recv_bytes()
        except (EOFError, OSError):  # the server went away
            return
        try:
            reply: tuple = ("ok", parse_email(raw, limits))
        except MalformedEmail as error:
            reply = (type(error).__name__, str(error))
        except Exception as error:  # any parser failure is the message's fault, and a 422
            reply = ("MalformedEmail", f"the parser failed: {type(error).__name__}: {error}")
        connection.send(reply)


class _Worker:
    def __init__(self, context, limits: EmailLimits):
        self.connection, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child, limits), name="email-parser", daemon=True
        )
        self.process.start()
        child.close()
        if not self.connection.poll(STARTUP_TIMEOUT_S) or self.connection.recv_bytes() != b"ready":
            self.close()
            raise ParsersUnavailable("an e-mail parser process did not start")

    def parse(self, raw: bytes, timeout_s: float) -> tuple:
        self.connection.send_bytes(raw)
        if not self.connection.poll(timeout_s):
            raise TimeoutError
        return self.connection.recv()

    def close(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.connection.close()


class EmailParsers:
    """At most `workers` messages parsed at once, each in its own process for `timeout_s`."""

    def __init__(self, limits: EmailLimits, workers: int, timeout_s: float):
        self.limits, self.timeout_s = limits, timeout_s
        self._context = multiprocessing.get_context("forkserver")
        # The fork server imports the parser once; each worker then starts as a cheap fork.
        self._context.set_forkserver_preload([__name__])
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []

    async def parse(self, raw: bytes) -> ParsedEmail:
        async with self._slots:
            worker = self._idle.pop() if self._idle else None
            worker, reply = await asyncio.to_thread(self._run, worker, raw)
            if worker is not None:
                self._idle.append(worker)
        kind, value = reply
        if kind == "ok":
            return value
        raise (EmailTooComplex if kind == EmailTooComplex.__name__ else MalformedEmail)(value)

    def _run(self, worker: _Worker | None, raw: bytes) -> tuple[_Worker | None, tuple]:
        """In a thread: the reply, and the worker when it can serve again."""
        if worker is None or not worker.process.is_alive():
            try:
                worker = _Worker(self._context, self.limits)
            except (EOFError, OSError) as error:
                message = f"an e-mail parser process did not start: {error}"
                raise ParsersUnavailable(message) from error
        try:
            return worker, worker.parse(raw, self.timeout_s)
        except TimeoutError:
            worker.close()
            message = f"parsing took longer than the {self.timeout_s:g} s limit"
            return None, (EmailTooComplex.__name__, message)
        except (EOFError, OSError):  # the worker died on this message (memory, a crash)
            worker.close()
            return None, (EmailTooComplex.__name__, "the parser could not process this message")

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

"""Run the scheduler in process and collect what a client would see."""

import threading
import time
from dataclasses import dataclass, field

from llm_engine.sampling import SamplingParams
from llm_engine.scheduler import Finish, Priority, Request, Scheduler


@dataclass
class Collected:
    deltas: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    finish: Finish | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    def request(self, prompt: str, priority: Priority = Priority.INTERACTIVE, **params) -> Request:
        def on_text(delta: str) -> None:
            self.deltas.append(delta)
            self.times.append(time.perf_counter())

        def on_finish(finish: Finish) -> None:
            self.finish = finish
            self.done.set()

        sampling = SamplingParams(**params)
        return Request(prompt, sampling, on_text, on_finish, self.cancelled.is_set, priority)


def generate(scheduler: Scheduler, prompt: str, timeout_s: float = 120, **params) -> Collected:
    collected = Collected()
    scheduler.submit(collected.request(prompt, **params))
    assert collected.done.wait(timeout_s), "generation did not finish"
    return collected


def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)

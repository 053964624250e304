"""Every metric the orchestrator exports, defined in one place (prefix `support_`).

Label sets are fixed and bounded: routes are path templates (`/v1/tickets/{id}`), never raw
paths; departments and priorities come from the taxonomy; `source` is "chat" or "draft".
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
TPOT_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


class Metrics:
    """One registry per app, so that several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "support_http_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.triage_outcomes = Counter(
            "support_triage_outcomes_total",
            "Triaged texts by department and priority",
            ("department", "priority"),
            registry=registry,
        )
        self.ttft_seconds = Histogram(
            "support_generation_ttft_seconds",
            "Time to the first generated token, from the request's start",
            ("source",),
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tpot_seconds = Histogram(
            "support_generation_tpot_seconds",
            "Mean time per output token after the first, one sample per generation",
            ("source",),
            buckets=TPOT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "support_generation_tokens_total",
            "Tokens read (prompt) and written (completion) by the LLM",
            ("source", "kind"),
            registry=registry,
        )
        self.queue_depth = Gauge(
            "support_jobs_queue_depth",
            "Ticket jobs not finished yet (pending or running), read at scrape time",
            registry=registry,
        )
        self.queue_oldest_age = Gauge(
            "support_jobs_oldest_age_seconds",
            "Age of the oldest unfinished ticket job, read at scrape time",
            registry=registry,
        )
        self.jobs_processed = Counter(
            "support_jobs_processed_total",
            "Job attempts by outcome: done, retry (will run again), wait (a dependency is "
            "down; attempt not counted), failed (gave up) or lease_lost (the lease lapsed "
            "and the result was dropped)",
            ("outcome",),
            registry=registry,
        )
        self.model_memory_delta = Gauge(
            "support_model_memory_delta_bytes",
            "Host memory change across the last load or unload of a model",
            ("model", "action"),
            registry=registry,
        )

    def observe_generation(
        self, source: str, ttft_s: float | None, tpot_s: float | None, prompt: int, completion: int
    ) -> None:
        if ttft_s is not None:
            self.ttft_seconds.labels(source).observe(ttft_s)
        if tpot_s is not None:
            self.tpot_seconds.labels(source).observe(tpot_s)
        self.tokens.labels(source, "prompt").inc(prompt)
        self.tokens.labels(source, "completion").inc(completion)

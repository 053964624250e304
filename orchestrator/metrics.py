"""Every metric the orchestrator exports, defined in one place (prefix `support_`).

Label sets are fixed and bounded: routes are path templates (`/v1/tickets/{id}`), never raw
paths; departments and priorities come from the taxonomy.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One registry per app, so that several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "support_http_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.triage_outcomes = Counter(
            "support_triage_outcomes_total",
            "Triaged texts by department and priority",
            ("department", "priority"),
            registry=self.registry,
        )

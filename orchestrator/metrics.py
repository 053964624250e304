"""Every metric family the orchestrator and its worker export, defined here and only here.

Rules (vLLM's): prefix `support_`; counters end in `_total`; times are `_seconds` histograms
with explicit buckets; label sets are fixed and bounded: routes are path templates
(`/v1/tickets/{id}`), never raw paths; departments and priorities come from the taxonomy;
`source` is "chat" or "draft"; `gpu` is an index; `tenant` is a tenant's name (tenants are
created by platform admins, so they are few) or "all"; model names (`model`, `primary`,
`fallback`) come from the configuration. The names are a contract: deploy/grafana and
deploy/prometheus chart and alert on them.
"""

from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
TPOT_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


class Metrics:
    """One registry per app, so that several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        histogram = partial(Histogram, registry=registry)
        counter = partial(Counter, registry=registry)
        gauge = partial(Gauge, registry=registry)
        # HTTP (the RequestTimer middleware) and triage
        self.request_seconds = histogram(
            "support_http_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
        )
        self.triage_outcomes = counter(
            "support_triage_outcomes_total",
            "Triaged texts by department and priority",
            ("department", "priority"),
        )
        self.diagnoses = counter(
            "support_diagnoses_total", "Chest x-rays diagnosed, by the model's label", ("label",)
        )
        self.credit_decisions = counter(
            "support_credit_decisions_total",
            "Credit applicants scored, by the decision under their tenant's policy",
            ("decision",),
        )
        # Credit drift (GET /v1/credit/drift); deploy/prometheus alerts at 0.1 and 0.25
        self.credit_psi = gauge(
            "support_credit_psi",
            "Population stability index of a credit feature (or `probability`) in the tenant's "
            "latest drift report against the training split",
            ("tenant", "feature"),
        )
        # Canaries rolled back automatically (services/canary.py); deploy/prometheus alerts
        self.canary_aborts = counter(
            "support_canary_aborts_total",
            "Canary versions rolled back automatically for doing worse than production",
            ("model",),
        )
        # Generation (chat and drafts), timed by services.generation.GenerationTimer
        per_source = ("source",)
        self.ttft_seconds = histogram(
            "support_generation_ttft_seconds",
            "Time to the first generated token, from the request's start",
            per_source,
            buckets=TTFT_BUCKETS,
        )
        self.tpot_seconds = histogram(
            "support_generation_tpot_seconds",
            "Mean time per output token after the first, one sample per generation",
            per_source,
            buckets=TPOT_BUCKETS,
        )
        self.tokens = counter(
            "support_generation_tokens_total",
            "Tokens read (prompt) and written (completion) by the LLM",
            (*per_source, "kind"),
        )
        # LLM failover (services/failover.py): labels are the configured model names
        self.llm_failovers = counter(
            "support_llm_failovers_total",
            "Chat and draft requests sent to the fallback model, by reason: the primary was "
            "unavailable, timed_out or overloaded before its first token, or its breaker was "
            "open (breaker_open)",
            ("primary", "fallback", "reason"),
        )
        self.llm_breaker_state = gauge(
            "support_llm_breaker_state",
            "The primary model's circuit breaker: 0 closed, 1 half-open (probing the primary), "
            "2 open (requests go to the fallback first)",
            ("model",),
        )
        # The job queue (read at scrape time) and the worker
        self.queue_depth = gauge(
            "support_jobs_queue_depth",
            "Ticket jobs not finished yet (pending or running), read at scrape time",
        )
        self.queue_oldest_age = gauge(
            "support_jobs_oldest_age_seconds",
            "Age of the oldest unfinished ticket job, read at scrape time",
        )
        self.jobs_processed = counter(
            "support_jobs_processed_total",
            "Job attempts by outcome: done, retry (will run again), wait (a dependency is "
            "down; attempt not counted), failed (gave up) or lease_lost (the lease lapsed "
            "and the result was dropped)",
            ("outcome",),
        )
        # The control plane
        self.model_memory_delta = gauge(
            "support_model_memory_delta_bytes",
            "Host memory change across the last load or unload of a model",
            ("model", "action"),
        )
        # MLflow's copy of the versions' rollout (services/rollout_record.py)
        self.mlflow_record_failures = counter(
            "support_mlflow_record_failures_total",
            "Version moves whose record in MLflow failed or timed out, by reason (error, "
            "timeout); the move itself stands and the next record mends it",
            ("reason",),
        )
        self.drift = DriftGauges(registry)  # the drift monitor (services/drift)

    def observe_generation(
        self, source: str, ttft_s: float | None, tpot_s: float | None, prompt: int, completion: int
    ) -> None:
        if ttft_s is not None:
            self.ttft_seconds.labels(source).observe(ttft_s)
        if tpot_s is not None:
            self.tpot_seconds.labels(source).observe(tpot_s)
        self.tokens.labels(source, "prompt").inc(prompt)
        self.tokens.labels(source, "completion").inc(completion)


class ResourceGauges:
    """Host, process and GPU resources, set by services.watchdog.ResourceWatchdog.

    GPU gauges keep their HELP/TYPE lines and no samples where there is no GPU.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        gauge = partial(Gauge, registry=registry)
        host, per_gpu = "support_host_", ("gpu",)
        self.cpu_percent = gauge(
            host + "cpu_percent",
            "Host CPU busy percent over the last sampling interval (all cores)",
        )
        self.memory_used = gauge(
            host + "memory_used_bytes", "Host memory in use (total minus available)"
        )
        self.memory_total = gauge(host + "memory_total_bytes", "Host memory installed")
        self.process_rss = gauge(
            "support_process_resident_memory_bytes", "Resident memory of this process"
        )
        self.gpu_utilization = gauge(
            "support_gpu_utilization_percent",
            "GPU busy percent as NVML reports it; no samples where there is no GPU",
            per_gpu,
        )
        self.gpu_memory_used = gauge(
            "support_gpu_memory_used_bytes", "GPU memory in use, by GPU index", per_gpu
        )
        self.gpu_memory_total = gauge(
            "support_gpu_memory_total_bytes", "GPU memory installed, by GPU index", per_gpu
        )


class DriftGauges:
    """The drift monitor's latest pass (services/drift), per tenant and for "all" tenants.

    Set by the worker after its pass, and read from the database at scrape time by the API, so
    that any replica exports the latest pass, whoever ran it. A tenant left out of the latest
    pass (too few tickets) has no samples.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        gauge, per_tenant = partial(Gauge, registry=registry), ("tenant",)
        self.drift_share = gauge(
            "support_drift_share",
            "Share of the monitored signals (text length, language, embeddings, intent mix, "
            "confidence) that drifted from the training reference in the latest drift run",
            per_tenant,
        )
        self.prediction_drift_score = gauge(
            "support_prediction_drift_score",
            "How far the intent mix or the confidence histogram moved from the reference in the "
            "latest drift run: total variation distance beyond chance, 0 none, 1 all",
            per_tenant,
        )
        self.override_rate = gauge(
            "support_override_rate",
            "Share of the latest drift run's tickets whose intent an agent corrected; no sample "
            "where no ticket of the window was corrected",
            per_tenant,
        )

    def show(self, runs) -> None:
        """Replace every sample with the given runs' (objects with tenant, drift_share,
        prediction_drift_score and override_rate)."""
        for gauge in (self.drift_share, self.prediction_drift_score, self.override_rate):
            gauge.clear()
        for run in runs:
            self.drift_share.labels(run.tenant).set(run.drift_share)
            self.prediction_drift_score.labels(run.tenant).set(run.prediction_drift_score)
            if run.override_rate is not None:
                self.override_rate.labels(run.tenant).set(run.override_rate)

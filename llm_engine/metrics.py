"""The `llm` model's metric families: vLLM's set under the product's prefix, defined once.

They are registered inside Triton (model_repository/llm/1/model.py binds them through the
Python backend's metrics API) and appear on Triton's metrics port; deploy/grafana and
deploy/prometheus chart them. Times are `_seconds` histograms with explicit buckets, counters
end in `_total`, and every family has the same fixed labels (model, version, engine, and `load`,
one id per model instance: a reload must not share a metric with the instance it replaces, see
model_repository/llm/1/model.py), plus `finished_reason` from FinishReason on the
finished-requests counter and `code` (queue_full, queue_timeout) on the rejected-requests one.
"""

from dataclasses import dataclass

PREFIX = "support_llm_"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0)
TOKEN_GAP_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class Family:
    name: str  # without the prefix
    description: str
    kind: str  # "histogram", "counter" or "gauge"
    buckets: tuple[float, ...] | None = None


def _histogram(name: str, description: str, buckets=LATENCY_BUCKETS) -> Family:
    return Family(name, description, "histogram", buckets)


FAMILIES = {
    "ttft": _histogram("time_to_first_token_seconds", "Time to first token"),
    "itl": _histogram("inter_token_latency_seconds", "Time between two tokens", TOKEN_GAP_BUCKETS),
    "e2e": _histogram("e2e_request_latency_seconds", "Arrival to final response"),
    "queue": _histogram("request_queue_time_seconds", "Time waiting for a slot"),
    "prompt": Family("prompt_tokens_total", "Prompt tokens of finished requests", "counter"),
    "generation": Family("generation_tokens_total", "Generated tokens", "counter"),
    "running": Family("num_requests_running", "Sequences in the running batch", "gauge"),
    "waiting": Family("num_requests_waiting", "Requests waiting for a slot", "gauge"),
    "finished": Family("request_finished_total", "Finished requests by reason", "counter"),
    "prefix": Family(
        "prefix_cache_hit_tokens_total", "Prompt tokens taken from the cache", "counter"
    ),
    "preempted": Family(
        "num_preemptions_total", "Sequences preempted for cache cells, recomputed later", "counter"
    ),
    "rejected": Family(
        "request_rejected_total",
        "Requests refused: the queue was full or the wait too long",
        "counter",
    ),
}

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kestrel.common.events import Attempt, RequestEvent
from kestrel.edge.metrics import EdgeMetrics


def scrape(metrics: EdgeMetrics) -> dict[str, list]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_requests_attempts_tokens_and_latency_are_counted_from_events() -> None:
    metrics = EdgeMetrics()
    event = RequestEvent(
        request_id="r",
        started_at_ms=0,
        path="/v1/messages",
        status=200,
        requested_model="claude-x",
        served_model="claude-x",
        duration_ms=120,
        ttfb_ms=30,
        input_tokens=10,
        output_tokens=5,
        cache_read_input_tokens=100,
        attempts=[
            Attempt("a", "claude-x", 429, "rate_limited"),
            Attempt("b", "claude-x", 200),
            Attempt("c", "claude-x", 0, "connect_error"),
        ],
    )
    metrics.observe(event)
    metrics.observe(event)
    dropped = [3]
    metrics.counter_from("kestrel_events_dropped", "dropped", lambda: dropped[0])
    families = scrape(metrics)
    requests = {s.labels["code"]: s.value for s in families["kestrel_requests"] if s.name.endswith("_total")}
    assert requests == {"200": 2}
    attempts = {
        (s.labels["account"], s.labels["result"]): s.value
        for s in families["kestrel_upstream_attempts"]
        if s.name.endswith("_total")
    }
    assert attempts == {("a", "429"): 2, ("b", "200"): 2, ("c", "connect_error"): 2}
    tokens = {s.labels["kind"]: s.value for s in families["kestrel_tokens"] if s.name.endswith("_total")}
    assert tokens == {"input": 20, "output": 10, "cache_read": 200, "cache_creation": 0}
    buckets = {
        s.labels["le"]: s.value for s in families["kestrel_request_duration_seconds"] if s.name.endswith("_bucket")
    }
    assert buckets["0.1"] == 0 and buckets["0.25"] == 2 and buckets["+Inf"] == 2
    assert [s.value for s in families["kestrel_events_dropped"] if s.name.endswith("_total")] == [3]

"""Prometheus metrics for the edge, derived from the request event at the end of each request.

The request path only bumps plain integers (a few dict updates per request); the families are
built at scrape time by a custom collector. Names follow Prometheus conventions: ``_total`` for
counters, base units (seconds) for durations.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from kestrel.common.events import RequestEvent

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip([*map(str, BUCKETS), "+Inf"], self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class EdgeMetrics(Collector):
    """Requests, attempts, token usage and time to first byte; plus gauges read from other parts."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.duration: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.ttfb: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self._gauges: list[tuple[str, str, Callable[[], float]]] = []
        self._counters: list[tuple[str, str, Callable[[], float]]] = []

    def observe(self, event: RequestEvent) -> None:
        model = event.served_model or event.requested_model
        self.requests[(event.path, str(event.status), model)] += 1
        for attempt in event.attempts:
            self.attempts[(attempt.account_id, str(attempt.status) if attempt.status else attempt.error)] += 1
        if event.input_tokens or event.output_tokens:
            self.tokens[(model, "input")] += event.input_tokens
            self.tokens[(model, "output")] += event.output_tokens
            self.tokens[(model, "cache_read")] += event.cache_read_input_tokens
            self.tokens[(model, "cache_creation")] += event.cache_creation_input_tokens
        self.duration[event.path].observe(event.duration_ms / 1000)
        if event.ttfb_ms:
            self.ttfb[event.path].observe(event.ttfb_ms / 1000)

    def counter_from(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Export a counter another part keeps (e.g. events dropped by the publisher)."""
        self._counters.append((name, documentation, read))

    def gauge_from(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._gauges.append((name, documentation, read))

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        family = CounterMetricFamily(
            "kestrel_requests", "Client requests by path, status and model.", labels=["path", "code", "model"]
        )
        for labels, value in list(self.requests.items()):
            family.add_metric(list(labels), value)
        yield family
        family = CounterMetricFamily(
            "kestrel_upstream_attempts",
            "Attempts on upstream accounts by account and result (HTTP status or error class).",
            labels=["account", "result"],
        )
        for labels, value in list(self.attempts.items()):
            family.add_metric(list(labels), value)
        yield family
        family = CounterMetricFamily("kestrel_tokens", "Tokens by model and kind.", labels=["model", "kind"])
        for labels, value in list(self.tokens.items()):
            family.add_metric(list(labels), value)
        yield family
        for name, help_text, histograms in (
            ("kestrel_request_duration_seconds", "Time from request to last byte.", self.duration),
            ("kestrel_time_to_first_byte_seconds", "Time from request to the first byte sent.", self.ttfb),
        ):
            hist = HistogramMetricFamily(name, help_text, labels=["path"])
            for path, h in list(histograms.items()):
                hist.add_metric([path], h.buckets(), h.total)
            yield hist
        for name, help_text, read in self._counters:
            yield CounterMetricFamily(name, help_text, value=read())
        for name, help_text, read in self._gauges:
            yield GaugeMetricFamily(name, help_text, value=read())

"""Prometheus metrics for the scheduler: what it granted, refused and learned.

``CountingLeaseClient`` wraps any ``LeaseClient`` (the service behind the gRPC server) and counts
plain integers; ``SchedulerMetrics`` turns them into families at scrape time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from kestrel.scheduler.contract import Completion, Exhausted, Lease, LeaseClient, LeaseRequest


class CountingLeaseClient:
    """A ``LeaseClient`` that counts leases granted, refusals by reason and outcomes reported."""

    def __init__(self, inner: LeaseClient) -> None:
        self._inner = inner
        self.granted: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.exhausted: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.completed: defaultdict[tuple[str, str], int] = defaultdict(int)

    async def acquire(self, request: LeaseRequest) -> Lease | Exhausted:
        result = await self._inner.acquire(request)
        if isinstance(result, Lease):
            self.granted[(result.account_id, "sticky" if result.sticky else "chosen")] += 1
        else:
            self.exhausted[(request.model, result.reason.name.lower())] += 1
        return result

    async def renew(self, lease: Lease) -> bool:
        return await self._inner.renew(lease)

    async def complete(self, lease: Lease, completion: Completion) -> None:
        self.completed[(lease.account_id, completion.outcome.name.lower())] += 1
        await self._inner.complete(lease, completion)


class SchedulerMetrics(Collector):
    def __init__(self, counts: CountingLeaseClient) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, help_text, labels, values in (
            (
                "kestrel_scheduler_leases",
                "Leases granted, by account and how it was chosen.",
                ["account", "via"],
                self._counts.granted,
            ),
            (
                "kestrel_scheduler_exhausted",
                "Acquires answered with no account, by model and reason.",
                ["model", "reason"],
                self._counts.exhausted,
            ),
            (
                "kestrel_scheduler_outcomes",
                "Attempt outcomes reported by edges, by account and outcome.",
                ["account", "outcome"],
                self._counts.completed,
            ),
        ):
            family = CounterMetricFamily(name, help_text, labels=labels)
            for key, value in list(values.items()):
                family.add_metric(list(key), value)
            yield family

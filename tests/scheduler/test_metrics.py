from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kestrel.scheduler import Completion, LeaseRequest, MemoryStore, Outcome, SchedulerService
from kestrel.scheduler.contract import Lease
from kestrel.scheduler.metrics import CountingLeaseClient, SchedulerMetrics

from .factories import account, settings


async def test_grants_refusals_and_outcomes_are_counted() -> None:
    counted = CountingLeaseClient(SchedulerService([account("a", max_concurrency=1)], settings(), MemoryStore()))
    lease = await counted.acquire(LeaseRequest("r1", "claude-x", max_wait_s=0))
    assert isinstance(lease, Lease)
    await counted.acquire(LeaseRequest("r2", "claude-x", max_wait_s=0))  # the only slot is taken
    await counted.complete(lease, Completion(Outcome.RATE_LIMITED, 429))
    registry = CollectorRegistry()
    registry.register(SchedulerMetrics(counted))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("kestrel_scheduler_leases_total", (("account", "a"), ("via", "chosen")))] == 1
    assert samples[("kestrel_scheduler_exhausted_total", (("model", "claude-x"), ("reason", "all_busy")))] == 1
    assert samples[("kestrel_scheduler_outcomes_total", (("account", "a"), ("outcome", "rate_limited")))] == 1

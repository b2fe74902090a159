"""The pure policy: ranking, eligibility, explanations, and what outcomes do to an account."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.common.config import AccountConfig
from kestrel.scheduler.contract import (
    AccountState,
    Completion,
    Exhausted,
    ExhaustedReason,
    LeaseRequest,
    Outcome,
)
from kestrel.scheduler.leases import (
    AccountView,
    Backoff,
    Block,
    Effect,
    Pick,
    Snapshot,
    backoff_delay,
    block_of,
    choose,
    effect_of,
    outcome_for_status,
    worth_waiting,
)
from kestrel.scheduler.ratelimits import Quota

from .factories import account, settings

NOW = 1_700_000_000.0
SOFT = 0.05
DRAINED = Quota(remaining_fraction=0.01, expires_at=NOW + 60)
HEALTHY = Quota(remaining_fraction=0.5, expires_at=NOW + 60)


@dataclass
class Case:
    name: str
    accounts: list[AccountConfig]
    expected: tuple[str, ...]
    views: dict[str, AccountView] = field(default_factory=dict)
    sticky: str | None = None
    exclude: frozenset[str] = frozenset()
    expect_sticky: bool = False


CASES = [
    Case("lowest priority value first", [account("a", priority=1), account("b")], ("b", "a")),
    Case(
        "sticky account first even against priority",
        [account("a", priority=1), account("b")],
        ("a", "b"),
        sticky="a",
        expect_sticky=True,
    ),
    Case(
        "sticky account cooling: the next best serves",
        [account("a"), account("b")],
        ("b",),
        views={"a": AccountView(cooling_until=NOW + 10)},
        sticky="a",
    ),
    Case(
        "sticky account excluded",
        [account("a"), account("b")],
        ("b",),
        sticky="a",
        exclude=frozenset({"a"}),
    ),
    Case(
        "sticky account full",
        [account("a", max_concurrency=2), account("b")],
        ("b",),
        views={"a": AccountView(in_flight=2)},
        sticky="a",
    ),
    Case(
        "sticky binding to an account not serving the model is ignored",
        [account("a"), account("b")],
        ("a", "b"),
        sticky="zz",
    ),
    Case(
        "above the soft limit before nearly drained, despite more in flight",
        [account("a"), account("b")],
        ("b", "a"),
        views={"a": AccountView(quota=DRAINED), "b": AccountView(in_flight=5, quota=HEALTHY)},
    ),
    Case(
        "an expired quota reading does not count",
        [account("a"), account("b")],
        ("a", "b"),
        views={
            "a": AccountView(quota=Quota(0.0, expires_at=NOW - 1)),
            "b": AccountView(in_flight=5),
        },
    ),
    Case(
        "priority outranks the soft limit",
        [account("a"), account("b", priority=1)],
        ("a", "b"),
        views={"a": AccountView(quota=DRAINED)},
    ),
    Case(
        "fewest in flight",
        [account("a"), account("b"), account("c")],
        ("b", "c", "a"),
        views={
            "a": AccountView(in_flight=3),
            "b": AccountView(in_flight=1),
            "c": AccountView(in_flight=2),
        },
    ),
    Case(
        "least recently used among equals",
        [account("a"), account("b")],
        ("b", "a"),
        views={"a": AccountView(last_used=NOW - 1), "b": AccountView(last_used=NOW - 100)},
    ),
    Case("configuration order breaks full ties", [account("a"), account("b")], ("a", "b")),
    Case(
        "ineligible accounts are left out of the order",
        [account("a"), account("b"), account("c"), account("d"), account("e", max_concurrency=1)],
        ("d",),
        views={
            "a": AccountView(cooling_until=NOW + 1),
            "b": AccountView(backoff_until=NOW + 1),
            "c": AccountView(auth_until=NOW + 1),
            "e": AccountView(in_flight=1),
        },
    ),
    Case(
        "blocks that ended at or before now do not count",
        [account("a")],
        ("a",),
        views={"a": AccountView(cooling_until=NOW, backoff_until=NOW - 1, auth_until=NOW)},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_choose_ranks_eligible_accounts(case: Case) -> None:
    request = LeaseRequest("r1", "claude-x", session_id="s", exclude_accounts=case.exclude)
    result = choose(case.accounts, Snapshot(case.views, case.sticky), request, SOFT, NOW)
    assert isinstance(result, Pick)
    assert result.order == case.expected
    assert result.sticky is case.expect_sticky


@pytest.mark.parametrize(
    ("view", "excluded", "state"),
    [
        (AccountView(), True, AccountState("a", "tried")),
        (AccountView(cooling_until=NOW + 10), False, AccountState("a", "cooling", 10.0)),
        (AccountView(backoff_until=NOW + 4), False, AccountState("a", "backoff", 4.0)),
        (AccountView(auth_until=NOW + 300), False, AccountState("a", "auth", 300.0)),
        (AccountView(in_flight=2), False, AccountState("a", "full", 0.0)),
        (
            AccountView(cooling_until=NOW + 10, backoff_until=NOW + 20, in_flight=2),
            False,
            AccountState("a", "backoff", 20.0),
        ),
    ],
    ids=["tried", "cooling", "backoff", "auth", "full", "longest-block-wins"],
)
def test_each_exclusion_reason_is_explained(
    view: AccountView, excluded: bool, state: AccountState
) -> None:
    accounts = [account("a", max_concurrency=2), account("b", priority=5)]
    request = LeaseRequest("r1", "m", exclude_accounts=frozenset({"a", "b"} if excluded else {"b"}))
    result = choose(accounts, Snapshot({"a": view}), request, SOFT, NOW)
    assert isinstance(result, Exhausted)
    assert result.accounts[0] == state
    assert result.accounts[1] == AccountState("b", "tried")
    expected_reason = ExhaustedReason.ALL_TRIED if excluded else ExhaustedReason.ALL_BUSY
    assert result.reason is expected_reason


def test_all_busy_retry_after_is_the_earliest_expiry() -> None:
    accounts = [account("a"), account("b"), account("c")]
    views = {
        "a": AccountView(cooling_until=NOW + 10),
        "b": AccountView(backoff_until=NOW + 5),
        "c": AccountView(auth_until=NOW + 300),
    }
    result = choose(accounts, Snapshot(views), LeaseRequest("r", "m"), SOFT, NOW)
    assert result == Exhausted(
        ExhaustedReason.ALL_BUSY,
        5.0,
        (
            AccountState("a", "cooling", 10.0),
            AccountState("b", "backoff", 5.0),
            AccountState("c", "auth", 300.0),
        ),
    )


def test_all_busy_retry_after_is_unknown_when_an_account_is_only_full() -> None:
    accounts = [account("a", max_concurrency=1), account("b")]
    views = {"a": AccountView(in_flight=1), "b": AccountView(cooling_until=NOW + 10)}
    result = choose(accounts, Snapshot(views), LeaseRequest("r", "m"), SOFT, NOW)
    assert isinstance(result, Exhausted)
    assert result.reason is ExhaustedReason.ALL_BUSY
    assert result.retry_after_s == 0.0


def test_no_account_serves_the_model() -> None:
    result = choose([], Snapshot({}), LeaseRequest("r", "m"), SOFT, NOW)
    assert result == Exhausted(ExhaustedReason.NO_ACCOUNT)


@pytest.mark.parametrize(
    ("states", "views", "left", "expected"),
    [
        ([AccountState("a", "full")], {}, 0.1, True),
        ([AccountState("a", "cooling", 5.0)], {}, 10.0, True),
        ([AccountState("a", "cooling", 5.0)], {}, 4.0, False),
        ([AccountState("a", "auth", 300.0), AccountState("b", "tried")], {}, 10.0, False),
        ([AccountState("a", "backoff", 30.0)], {}, 10.0, False),
        ([AccountState("a", "backoff", 30.0)], {"a": AccountView(in_flight=1)}, 10.0, True),
    ],
    ids=[
        "full",
        "cooldown-ends-in-time",
        "cooldown-too-late",
        "auth",
        "backoff-idle",
        "backoff-with-attempts-in-flight",
    ],
)
def test_worth_waiting(
    states: list[AccountState], views: dict[str, AccountView], left: float, expected: bool
) -> None:
    free_in = [s.free_in_s for s in states if s.state not in ("full", "tried")]
    retry = 0.0 if any(s.state == "full" for s in states) else min(free_in)
    exhausted = Exhausted(ExhaustedReason.ALL_BUSY, retry, tuple(states))
    assert worth_waiting(exhausted, views, left) is expected


def test_never_worth_waiting_for_tried_accounts() -> None:
    exhausted = Exhausted(ExhaustedReason.ALL_TRIED, 0.0, (AccountState("a", "tried"),))
    assert not worth_waiting(exhausted, {}, 10.0)


@pytest.mark.parametrize(
    ("errors", "delay"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (8, 60.0), (10_000, 60.0)],
)
def test_backoff_grows_exponentially_to_the_cap(errors: int, delay: float) -> None:
    assert backoff_delay(errors, 1.0, 60.0) == delay


def test_backoff_respects_base() -> None:
    assert [backoff_delay(n, 0.5, 3.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("completion", "effect"),
    [
        (Completion(Outcome.RATE_LIMITED, 429, retry_after_s=12.0), Effect(cool_until=NOW + 12)),
        (Completion(Outcome.RATE_LIMITED, 429), Effect(cool_until=NOW + 30)),
        (Completion(Outcome.OVERLOADED, 529), Effect(backoff=Backoff(1.0, 60.0))),
        (Completion(Outcome.SERVER_ERROR, 500), Effect(backoff=Backoff(1.0, 60.0))),
        (Completion(Outcome.CONNECT_ERROR), Effect(backoff=Backoff(1.0, 60.0))),
        (Completion(Outcome.AUTH_ERROR, 401), Effect(auth_until=NOW + 300)),
        (Completion(Outcome.SUCCESS, 200), Effect(clear_errors=True)),
        (Completion(Outcome.CLIENT_ERROR, 400), Effect()),
        (Completion(Outcome.CANCELLED), Effect()),
    ],
    ids=lambda v: v.outcome.name if isinstance(v, Completion) else "",
)
def test_effect_of_each_outcome(completion: Completion, effect: Effect) -> None:
    assert effect_of(completion, settings(), NOW) == effect


def test_success_records_the_quota_reading() -> None:
    headers = {"x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "3"}
    effect = effect_of(
        Completion(Outcome.SUCCESS, 200, rate_limit_headers=headers), settings(), NOW
    )
    assert effect.clear_errors
    assert effect.quota == Quota(0.03, NOW + 30)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCESS),
        (429, Outcome.RATE_LIMITED),
        (529, Outcome.OVERLOADED),
        (500, Outcome.SERVER_ERROR),
        (503, Outcome.SERVER_ERROR),
        (408, Outcome.SERVER_ERROR),
        (401, Outcome.AUTH_ERROR),
        (403, Outcome.AUTH_ERROR),
        (400, Outcome.CLIENT_ERROR),
        (404, Outcome.CLIENT_ERROR),
        (413, Outcome.CLIENT_ERROR),
        (0, Outcome.CONNECT_ERROR),
    ],
)
def test_outcome_for_status(status: int, outcome: Outcome) -> None:
    assert outcome_for_status(status) is outcome


# --- property: whatever the state, the pick is eligible and never excluded -------------------

_times = st.sampled_from([0.0, NOW - 5, NOW, NOW + 0.5, NOW + 30])
_views = st.builds(
    AccountView,
    in_flight=st.integers(0, 4),
    cooling_until=_times,
    backoff_until=_times,
    auth_until=_times,
    last_used=st.floats(0, NOW),
    quota=st.none() | st.builds(Quota, st.floats(0, 1), _times),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[AccountConfig], Snapshot, LeaseRequest]:
    ids = [f"acct{i}" for i in range(draw(st.integers(1, 6)))]
    accounts = [
        account(i, priority=draw(st.integers(0, 2)), max_concurrency=draw(st.integers(1, 3)))
        for i in ids
    ]
    views = {i: draw(_views) for i in ids if draw(st.booleans())}
    sticky = draw(st.none() | st.sampled_from([*ids, "elsewhere"]))
    exclude = frozenset(draw(st.lists(st.sampled_from(ids), unique=True)))
    return accounts, Snapshot(views, sticky), LeaseRequest("r", "m", exclude_accounts=exclude)


@given(scenarios())
def test_the_pick_is_always_eligible_and_never_excluded(
    scenario: tuple[list[AccountConfig], Snapshot, LeaseRequest],
) -> None:
    accounts, snapshot, request = scenario
    by_id = {a.id: a for a in accounts}

    def eligible(a: AccountConfig) -> bool:
        view = snapshot.accounts.get(a.id, AccountView())
        return (
            a.id not in request.exclude_accounts and block_of(view, a.max_concurrency, NOW) is None
        )

    result = choose(accounts, snapshot, request, SOFT, NOW)
    if isinstance(result, Exhausted):
        assert not any(eligible(a) for a in accounts)
        all_tried = all(a.id in request.exclude_accounts for a in accounts)
        assert result.reason is (
            ExhaustedReason.ALL_TRIED if all_tried else ExhaustedReason.ALL_BUSY
        )
        assert {s.account_id for s in result.accounts} == set(by_id)
        assert all(s.state in {b.value for b in Block} for s in result.accounts)
        return
    assert set(result.order) == {a.id for a in accounts if eligible(a)}
    chosen = by_id[result.account_id]
    if snapshot.sticky_account in result.order:
        assert result.sticky and chosen.id == snapshot.sticky_account
    else:
        assert chosen.priority == min(by_id[i].priority for i in result.order)

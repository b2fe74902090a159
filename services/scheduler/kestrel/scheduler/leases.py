"""Which account serves an attempt, and what an attempt's outcome does to an account: pure policy.

Nothing here performs I/O or reads a clock. A store (memory or Redis) produces a ``Snapshot``;
``choose`` turns it into a ``Pick`` (eligible accounts, best first) or an ``Exhausted`` that says
why none can serve. After the attempt, ``effect_of`` turns a ``Completion`` into an ``Effect``
that the store applies. Keeping the rules here means both store adapters and the service share one
definition of "eligible", and the rules are tested without any adapter.

An account is eligible for (model, now) when it is not excluded by the request, not cooling for
that model (429), not backing off (529/5xx/connect errors, all models), not auth-blocked
(401/403), and below its ``max_concurrency``. Eligible accounts are ranked: the session's sticky
account first, then lowest ``priority``, then accounts above the soft limit before nearly drained
ones, then fewest in flight, then least recently used, then configuration order.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kestrel.common.config import AccountConfig, SchedulerConfig

from .contract import (
    AccountState,
    Completion,
    Exhausted,
    ExhaustedReason,
    LeaseRequest,
    Outcome,
)
from .ratelimits import Quota, cooldown_until, quota_from

_MAX_BACKOFF_EXPONENT = 62  # 2**62 already dwarfs any sane cap; keeps the float finite


class Block(enum.StrEnum):
    """Why an account cannot serve right now; the values are ``AccountState.state``."""

    COOLING = "cooling"
    BACKOFF = "backoff"
    AUTH = "auth"
    FULL = "full"
    TRIED = "tried"


@dataclass(frozen=True, slots=True)
class AccountView:
    """What the store knows about one account, as seen for one model."""

    in_flight: int = 0
    cooling_until: float = 0.0
    """Rate-limited for this model until then (epoch seconds)."""
    backoff_until: float = 0.0
    """Backing off (all models) until then, after consecutive server-side failures."""
    consecutive_errors: int = 0
    auth_until: float = 0.0
    """The credential was rejected; left out until then."""
    last_used: float = 0.0
    """When a lease on this account was last granted."""
    quota: Quota | None = None
    """Quota reading from this account's last success on this model."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything ``choose`` needs about the state, read in one go from a store."""

    accounts: Mapping[str, AccountView]
    """Views by account id; an account missing here has a clean default view."""
    sticky_account: str | None = None
    """The account the request's (session, model) is bound to, if any."""


@dataclass(frozen=True, slots=True)
class Pick:
    """The eligible accounts in preference order; the store grants the first it still can."""

    order: tuple[str, ...]
    sticky_account: str | None = None

    @property
    def account_id(self) -> str:
        return self.order[0]

    @property
    def sticky(self) -> bool:
        return self.order[0] == self.sticky_account


@dataclass(frozen=True, slots=True)
class Backoff:
    """Count one more consecutive failure and back the account off by ``backoff_delay``."""

    base_s: float
    max_s: float


@dataclass(frozen=True, slots=True)
class Effect:
    """What one completion changes in the stored state; stores apply it atomically.

    Times only ever extend (a later 429 with a shorter retry-after does not shorten a cooldown).
    """

    cool_until: float | None = None
    """Rate limited: the (account, model) pair cools until then."""
    backoff: Backoff | None = None
    clear_errors: bool = False
    """Success: consecutive failures back to 0 and any backoff lifted."""
    auth_until: float | None = None
    quota: Quota | None = None

    @property
    def empty(self) -> bool:
        return self == _NO_EFFECT


_NO_EFFECT = Effect()


def block_of(view: AccountView, max_concurrency: int, now: float) -> tuple[Block, float] | None:
    """Why the account cannot take a lease now and until when (0 when unknown), or None.

    When several time blocks overlap, the one that lasts longest is reported, since that is when
    the account is actually free. Stores call this too, inside their atomic acquire.
    """
    timed = [
        (until, block)
        for block, until in (
            (Block.AUTH, view.auth_until),
            (Block.COOLING, view.cooling_until),
            (Block.BACKOFF, view.backoff_until),
        )
        if until > now
    ]
    if timed:
        until, block = max(timed, key=lambda item: item[0])
        return block, until
    if view.in_flight >= max_concurrency:
        return Block.FULL, 0.0
    return None


def is_drained(view: AccountView, soft_limit_fraction: float, now: float) -> bool:
    """Below the soft limit per a quota reading that is still current."""
    quota = view.quota
    return (
        quota is not None
        and quota.expires_at > now
        and quota.remaining_fraction < soft_limit_fraction
    )


def choose(
    accounts: Sequence[AccountConfig],
    snapshot: Snapshot,
    request: LeaseRequest,
    soft_limit_fraction: float,
    now: float,
) -> Pick | Exhausted:
    """Rank the eligible accounts among ``accounts`` (those serving the model), or explain."""
    if not accounts:
        return Exhausted(ExhaustedReason.NO_ACCOUNT)
    views = snapshot.accounts
    eligible = [
        (index, account)
        for index, account in enumerate(accounts)
        if account.id not in request.exclude_accounts
        and block_of(views.get(account.id, _CLEAN), account.max_concurrency, now) is None
    ]
    if not eligible:
        return explain(accounts, views, request.exclude_accounts, now)

    def key(item: tuple[int, AccountConfig]) -> tuple[bool, int, bool, int, float, int]:
        index, account = item
        view = views.get(account.id, _CLEAN)
        return (
            account.id != snapshot.sticky_account,
            account.priority,
            is_drained(view, soft_limit_fraction, now),
            view.in_flight,
            view.last_used,
            index,
        )

    order = tuple(account.id for _, account in sorted(eligible, key=key))
    return Pick(order=order, sticky_account=snapshot.sticky_account)


def explain(
    accounts: Sequence[AccountConfig],
    views: Mapping[str, AccountView],
    excluded: frozenset[str],
    now: float,
) -> Exhausted:
    """Why no account among ``accounts`` can serve: per-account states and when to retry.

    ``retry_after_s`` is the earliest time-based expiry; it is 0 (unknown) when an account is only
    full, because a slot frees whenever any attempt on it finishes, likely sooner than any cooldown.
    """
    if not accounts:
        return Exhausted(ExhaustedReason.NO_ACCOUNT)
    states: list[AccountState] = []
    free_in: list[float] = []
    any_full = False
    for account in accounts:
        if account.id in excluded:
            # A tried account that is now cooling says when it frees: the client's retry-after
            # must not be earlier than the real reset.
            found = block_of(views.get(account.id, _CLEAN), account.max_concurrency, now)
            if found is None or found[0] is Block.FULL or not found[1]:
                states.append(AccountState(account.id, Block.TRIED.value))
                continue
            seconds = max(found[1] - now, 0.0)
            states.append(AccountState(account.id, found[0].value, seconds))
            free_in.append(seconds)
            continue
        # An account that looks eligible here lost a race for its last slot (the store refused
        # the grant): report it full, which is what it just became.
        block, until = block_of(views.get(account.id, _CLEAN), account.max_concurrency, now) or (
            Block.FULL,
            0.0,
        )
        seconds = max(until - now, 0.0) if until else 0.0
        states.append(AccountState(account.id, block.value, seconds))
        if block is Block.FULL:
            any_full = True
        else:
            free_in.append(seconds)
    if all(account.id in excluded for account in accounts):
        return Exhausted(ExhaustedReason.ALL_TRIED, min(free_in) if free_in else 0.0, tuple(states))
    retry = 0.0 if any_full or not free_in else min(free_in)
    return Exhausted(ExhaustedReason.ALL_BUSY, retry, tuple(states))


def worth_waiting(exhausted: Exhausted, views: Mapping[str, AccountView], left_s: float) -> bool:
    """Could an account free up within ``left_s``? If not, answer now rather than at the deadline.

    A full account frees whenever one of its attempts ends, and an account backing off with
    attempts in flight is cleared by any of them succeeding: both are worth waiting for. Cooldowns
    and auth blocks end at known times, so when the earliest is past the deadline, holding the
    caller only delays its fallback to another model.
    """
    if exhausted.reason is not ExhaustedReason.ALL_BUSY:
        return False
    for state in exhausted.accounts:
        if state.state == Block.FULL:
            return True
        view = views.get(state.account_id, _CLEAN)
        if state.state == Block.BACKOFF and view.in_flight > 0:
            return True
    return 0 < exhausted.retry_after_s <= left_s


def backoff_delay(consecutive_errors: int, base_s: float, max_s: float) -> float:
    """``base * 2**(n-1)`` capped at ``max``: 1, 2, 4, 8... seconds for a 1 s base."""
    n = max(consecutive_errors, 1)
    return min(base_s * 2.0 ** min(n - 1, _MAX_BACKOFF_EXPONENT), max_s)


def effect_of(completion: Completion, settings: SchedulerConfig, now: float) -> Effect:
    """What an attempt's outcome does to its account's health.

    RATE_LIMITED cools the (account, model) pair; OVERLOADED, SERVER_ERROR and CONNECT_ERROR back
    the whole account off; AUTH_ERROR blocks it; SUCCESS clears backoff and records the quota;
    CLIENT_ERROR and CANCELLED say nothing about the account.
    """
    outcome = completion.outcome
    if outcome is Outcome.SUCCESS:
        quota = quota_from(completion.rate_limit_headers, now, settings.default_cooldown_seconds)
        return Effect(clear_errors=True, quota=quota)
    if outcome is Outcome.RATE_LIMITED:
        until = cooldown_until(
            completion.rate_limit_headers,
            completion.retry_after_s,
            now,
            settings.default_cooldown_seconds,
        )
        return Effect(cool_until=until)
    if outcome in (Outcome.OVERLOADED, Outcome.SERVER_ERROR, Outcome.CONNECT_ERROR):
        return Effect(backoff=Backoff(settings.backoff_base_seconds, settings.backoff_max_seconds))
    if outcome is Outcome.AUTH_ERROR:
        return Effect(auth_until=now + settings.auth_cooldown_seconds)
    return _NO_EFFECT


def outcome_for_status(status: int) -> Outcome:
    """Classify an upstream HTTP status for ``Completion.outcome`` (0 means never reached).

    Timeouts and streams cut short are SERVER_ERROR and cancellations CANCELLED; the edge knows
    those from the exception, not the status.
    """
    if status == 0:
        return Outcome.CONNECT_ERROR
    if 200 <= status < 400:
        return Outcome.SUCCESS
    if status == 429:
        return Outcome.RATE_LIMITED
    if status == 529:
        return Outcome.OVERLOADED
    if status in (401, 403):
        return Outcome.AUTH_ERROR
    if status in (408, 504) or status >= 500:
        return Outcome.SERVER_ERROR
    return Outcome.CLIENT_ERROR


_CLEAN = AccountView()

"""Fault injection switches and the per-action API call counters.

Switches are plain state read by the server and the engine: throttle a share of API
calls (``ThrottlingException``), delay delivery to instances, kill an instance when its
next invocation starts. Throttling and the counters can be narrowed to one account (the
caller's, as the server finds it from the access key), so a test in one account neither
throttles nor counts the calls of another test running beside it in another account.
Taking an instance offline or killing it now acts on the instance itself (see
``control.py``).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass


@dataclass
class ThrottleRule:
    share: float
    actions: frozenset[str] | None  # None: every SSM action
    limit: int | None  # at most this many throttled answers, then the rule retires
    account: str | None = None  # None: every account's calls
    hits: int = 0

    def to_dict(self) -> dict:
        return {
            "share": self.share,
            "actions": sorted(self.actions) if self.actions else None,
            "limit": self.limit,
            "account": self.account,
            "throttled": self.hits,
        }


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random()
        self.throttle_rule: ThrottleRule | None = None
        self.delays: dict[str, float] = {}  # instance id or "*" -> seconds
        self.kill_on_start: dict[str, float] = {}  # instance id -> seconds after the start
        self.calls: Counter[tuple[str | None, str]] = Counter()  # (account, action) -> n
        self.throttled: Counter[tuple[str | None, str]] = Counter()

    # -- throttling and counting -------------------------------------------------
    def set_throttle(
        self,
        share: float,
        actions: list[str] | None = None,
        limit: int | None = None,
        seed: int | None = None,
        account: str | None = None,
    ) -> ThrottleRule | None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be between 0 and 1, got {share}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self.lock:
            if seed is not None:
                self.rng.seed(seed)
            self.throttle_rule = (
                ThrottleRule(share, frozenset(actions) if actions else None, limit, account or None) if share else None
            )
            return self.throttle_rule

    def call(self, action: str, account: str | None = None) -> bool:
        """Count a call of ``action`` by ``account``; True when it must be answered with
        ThrottlingException."""
        with self.lock:
            self.calls[(account, action)] += 1
            rule = self.throttle_rule
            if rule is None or (rule.actions is not None and action not in rule.actions):
                return False
            if rule.account is not None and rule.account != account:
                return False
            if self.rng.random() >= rule.share:
                return False
            rule.hits += 1
            self.throttled[(account, action)] += 1
            if rule.limit is not None and rule.hits >= rule.limit:
                self.throttle_rule = None
            return True

    def counters(self, account: str | None = None) -> dict:
        """Calls per action since the last reset: every account's, or ``account``'s only."""
        with self.lock:
            return self._counted(account)

    def reset_counters(self, account: str | None = None) -> dict:
        """The counters, then zero: every account's, or ``account``'s only."""
        with self.lock:
            before = self._counted(account)
            for counter in (self.calls, self.throttled):
                for key in [key for key in counter if account is None or key[0] == account]:
                    del counter[key]
            return before

    def _counted(self, account: str | None) -> dict:
        def per_action(counter: Counter) -> dict[str, int]:
            found: Counter[str] = Counter()
            for (caller, action), n in counter.items():
                if account is None or caller == account:
                    found[action] += n
            return dict(sorted(found.items()))

        calls = per_action(self.calls)
        return {"calls": calls, "throttled": per_action(self.throttled), "total": sum(calls.values())}

    # -- delivery ----------------------------------------------------------------
    def set_delay(self, seconds: float, instance_ids: list[str] | None = None) -> None:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        with self.lock:
            for key in instance_ids or ["*"]:
                if seconds:
                    self.delays[key] = seconds
                else:
                    self.delays.pop(key, None)

    def delivery_delay(self, instance_id: str) -> float:
        with self.lock:
            return self.delays.get(instance_id, self.delays.get("*", 0.0))

    def arm_kill(self, instance_id: str, after: float) -> None:
        with self.lock:
            self.kill_on_start[instance_id] = after

    def take_kill(self, instance_id: str) -> float | None:
        with self.lock:
            return self.kill_on_start.pop(instance_id, None)

    def clear(self) -> None:
        with self.lock:
            self.throttle_rule = None
            self.delays.clear()
            self.kill_on_start.clear()

    def state(self) -> dict:
        with self.lock:
            return {
                "throttle": self.throttle_rule.to_dict() if self.throttle_rule else None,
                "delivery_delay": dict(self.delays),
                "kill_on_start": dict(self.kill_on_start),
            }

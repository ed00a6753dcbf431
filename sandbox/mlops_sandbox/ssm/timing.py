"""AWS's timing in the SSM service: how long a silent agent stays Online, how long a call
takes, how long a new command's invocations stay unlisted.

- ``connection_lost_after``: seconds without a word from an instance's agent before its
  PingStatus turns ConnectionLost. The SSM agent reports its health every 5 minutes
  (``HealthFrequencyMinutes``, default 5) and SSM marks an instance ConnectionLost once it
  missed that report: minutes after the agent died, not seconds. The default, 600 s, is
  that; a pre-flight check in that window sees a dead host Online. Tests that need a lost
  agent fast set a few seconds (``POST /_sandbox/settings``).
- ``latency``: ``[low, high]`` seconds added to every SSM API call (drawn uniformly), as a
  region 20-80 ms away answers; ``[0, 0]`` (the default) answers at once. ``make bench``
  turns it on.
- ``list_lag``: for this many seconds after SendCommand, ListCommandInvocations answers an
  empty list and GetCommandInvocation InvocationDoesNotExist for the new command, and
  ListCommands shows it Pending with no target yet, as AWS does while it fans a command
  out (aws-cli#3546). 0 (the default) lists invocations at once.

The start-up values come from the environment (``Config``); ``update`` changes them while
the service runs and ``reset`` puts the start-up values back.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass

# What AWS does, as the default (see above).
AWS_CONNECTION_LOST_AFTER = 600.0
LIMITS = {"connection_lost_after": (1.0, 86400.0), "latency": (0.0, 5.0), "list_lag": (0.0, 600.0)}


@dataclass
class Settings:
    connection_lost_after: float = AWS_CONNECTION_LOST_AFTER
    latency: tuple[float, float] = (0.0, 0.0)
    list_lag: float = 0.0

    def to_dict(self) -> dict:
        values = asdict(self)
        values["latency"] = list(self.latency)
        return values


class Timing:
    """The settings, shared by the request threads and the scheduler."""

    def __init__(self, start: Settings | None = None) -> None:
        self.start = start or Settings()
        self.current = Settings(**asdict(self.start))
        self.lock = threading.Lock()
        self.rng = random.Random()

    @property
    def connection_lost_after(self) -> float:
        return self.current.connection_lost_after

    @property
    def list_lag(self) -> float:
        return self.current.list_lag

    def call_delay(self) -> float:
        """Seconds to hold this API call before answering it."""
        low, high = self.current.latency
        if high <= 0:
            return 0.0
        with self.lock:
            return self.rng.uniform(low, high)

    def hold(self) -> None:
        delay = self.call_delay()
        if delay:
            time.sleep(delay)

    def listed(self, requested: float, now: float) -> bool:
        """Whether a command sent at ``requested`` shows its invocations yet."""
        return now - requested >= self.current.list_lag

    def update(self, body: dict) -> dict:
        """Change some settings; a bad value changes nothing and says what is allowed."""
        unknown = sorted(set(body) - set(LIMITS))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(LIMITS)}")
        changed = {}
        for name, value in body.items():
            changed[name] = _checked(name, value)
        with self.lock:
            for name, value in changed.items():
                setattr(self.current, name, value)
            return self.current.to_dict()

    def reset(self) -> dict:
        with self.lock:
            self.current = Settings(**asdict(self.start))
            return self.current.to_dict()

    def state(self) -> dict:
        with self.lock:
            return {**self.current.to_dict(), "start": self.start.to_dict()}


def _checked(name: str, value):
    low, high = LIMITS[name]
    if name == "latency":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value, value]
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"latency is [low, high] in seconds (or one number), got {value!r}")
        pair = tuple(_number(name, v, low, high) for v in value)
        if pair[0] > pair[1]:
            raise ValueError(f"latency [low, high]: low {pair[0]} is above high {pair[1]}")
        return pair
    return _number(name, value, low, high)


def _number(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is a number of seconds, got {value!r}")
    if not low <= float(value) <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g} seconds, got {value}")
    return float(value)


def parse_latency(text: str) -> tuple[float, float]:
    """``"0.02-0.08"`` or ``"0.05"`` (the environment's form) -> ``(low, high)``."""
    low, sep, high = text.strip().partition("-")
    try:
        pair = (float(low), float(high if sep else low))
    except ValueError:
        raise ValueError(f"latency is LOW-HIGH in seconds, like 0.02-0.08, got {text!r}") from None
    return _checked("latency", list(pair))

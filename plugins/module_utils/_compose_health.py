# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Whether a deploy is healthy: the containers' health, waited for, and an HTTP probe.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. ``health_verdict`` is pure (a snapshot in, a verdict
out); the two waits take their clock, sleep and observation as arguments.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

# ----------------------------------------------------------------- containers


def health_verdict(grouped: dict, services: list[str], expected: dict[str, int]) -> tuple[str, list[str]]:
    """``("ok" | "wait" | "fail", problems)`` for the containers of ``services``.

    Healthy (or running, for a container without a healthcheck) is ok; starting or
    created waits; unhealthy, exited, dead or restarting fails at once. ``expected``
    is service -> number of containers wanted.
    """
    problems: list[str] = []
    waiting: list[str] = []
    for service in services:
        containers = grouped.get(service, [])
        if len(containers) < expected.get(service, 1):
            waiting.append("%s: %d of %d containers" % (service, len(containers), expected.get(service, 1)))
        for c in containers:
            state, health = c["state"], c["health"]
            if state in ("exited", "dead"):
                problems.append("%s (%s) %s with code %s" % (c["name"], service, state, c["exit_code"]))
            elif state == "restarting":
                problems.append("%s (%s) keeps restarting (%s restarts)" % (c["name"], service, c["restart_count"]))
            elif state != "running":
                waiting.append("%s: %s" % (c["name"], state))
            elif health == "unhealthy":
                problems.append("%s (%s) is unhealthy: its healthcheck failed" % (c["name"], service))
            elif c["has_healthcheck"] and health != "healthy":
                waiting.append("%s: %s" % (c["name"], health or "starting"))
    if problems:
        return "fail", problems
    if waiting:
        return "wait", waiting
    return "ok", []


def wait_until_healthy(
    observe: Callable[[], dict],
    services: list[str],
    expected: dict[str, int],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, list[str], float]:
    """Poll ``observe()`` (a ``group_by_service`` map) until ``health_verdict`` is ok.

    Returns ``(verdict, problems, waited_seconds)``; ``fail`` comes back at once, and
    ``timeout`` when the deadline passes while still waiting.
    """
    start = clock()
    delay = 0.25
    while True:
        verdict, problems = health_verdict(observe(), services, expected)
        if verdict != "wait":
            return verdict, problems, round(clock() - start, 2)
        if clock() - start >= timeout:
            return "timeout", problems, round(clock() - start, 2)
        sleep(min(delay, max(0.05, timeout - (clock() - start))))
        delay = min(delay * 1.5, 2.0)


# ----------------------------------------------------------------------- HTTP


def probe_url(
    url: str,
    statuses: list[int],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    open_url: Callable | None = None,
) -> tuple[bool, str]:
    """GET ``url`` until it answers one of ``statuses`` or ``timeout`` passes; ``(ok, last)``."""
    open_url = open_url or urllib.request.build_opener(urllib.request.ProxyHandler({})).open
    start = clock()
    delay = 0.25
    last = "no answer"
    while True:
        try:
            with open_url(urllib.request.Request(url), timeout=5) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            status = None
            last = "no answer (%s)" % getattr(exc, "reason", exc)
        if status is not None:
            last = "HTTP %s" % status
            if status in statuses:
                return True, last
        if clock() - start >= timeout:
            return False, last
        sleep(delay)
        delay = min(delay * 1.5, 2.0)

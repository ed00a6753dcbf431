"""Health verdicts, the health wait and the probe (``_compose_health``), fed with output captured from
docker compose 2.40 and the Docker engine
(tests/unit/fixtures/compose)."""

from __future__ import annotations

import pytest
from compose_recorded import snapshot
from fake_clock import FakeClock

from ansible_collections.mlops.deploy.plugins.module_utils._compose_health import health_verdict, wait_until_healthy

# --------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("capture", "verdict", "problem"),
    [
        ("inspect_v1_healthy", "ok", None),
        ("inspect_v2_starting", "wait", "mlops-test-capture-api-1: starting"),
        ("inspect_broken_unhealthy", "fail", "mlops-test-capture-api-1 (api) is unhealthy"),
    ],
)
def test_health_verdict_from_captured_containers(capture, verdict, problem):
    result, problems = health_verdict(snapshot(capture), ["api", "worker"], {"api": 1, "worker": 1})
    assert result == verdict
    if problem:
        assert any(problem in p for p in problems), problems
    else:
        assert problems == []


@pytest.mark.parametrize(
    ("state", "verdict", "problem"),
    [
        ({"state": "exited", "exit_code": 3}, "fail", "exited with code 3"),
        ({"state": "restarting", "restart_count": 4}, "fail", "keeps restarting (4 restarts)"),
        ({"state": "created"}, "wait", "created"),
        ({"state": "running", "health": None, "has_healthcheck": False}, "ok", None),
    ],
)
def test_health_verdict_of_other_states(state, verdict, problem):
    grouped = snapshot("inspect_v1_healthy")
    grouped["api"][0].update(state)
    result, problems = health_verdict(grouped, ["api"], {"api": 1})
    assert result == verdict
    if problem:
        assert any(problem in p for p in problems), problems
    else:
        assert problems == []


def test_missing_replicas_are_waited_for():
    result, problems = health_verdict(snapshot("inspect_v1_healthy"), ["api"], {"api": 2})
    assert (result, problems) == ("wait", ["api: 1 of 2 containers"])


def test_wait_until_healthy_polls_until_healthy():
    observations = iter([snapshot("inspect_v2_starting")] * 3 + [snapshot("inspect_v1_healthy")])
    clock = FakeClock()
    verdict, problems, waited = wait_until_healthy(
        lambda: next(observations), ["api", "worker"], {"api": 1, "worker": 1}, 300, clock, clock.sleep
    )
    assert (verdict, problems) == ("ok", [])
    assert len(clock.sleeps) == 3
    assert clock.sleeps == sorted(clock.sleeps)  # backing off
    assert waited == round(sum(clock.sleeps), 2)


def test_wait_until_healthy_gives_up_at_the_timeout():
    clock = FakeClock()
    verdict, problems, waited = wait_until_healthy(
        lambda: snapshot("inspect_v2_starting"), ["api"], {"api": 1}, 30, clock, clock.sleep
    )
    assert verdict == "timeout"
    assert problems == ["mlops-test-capture-api-1: starting"]
    assert 30 <= waited <= 32
    assert max(clock.sleeps) <= 2.0


def test_wait_until_healthy_fails_at_once_on_unhealthy():
    clock = FakeClock()
    verdict, _problems, waited = wait_until_healthy(
        lambda: snapshot("inspect_broken_unhealthy"), ["api"], {"api": 1}, 300, clock, clock.sleep
    )
    assert (verdict, waited, clock.sleeps) == ("fail", 0, [])

"""The deploy lock: what a lock parameter says, and taking/releasing it through recorded SSM answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from recorded_ssm import ALREADY_EXISTS, RecordedSSM, not_found, parameter

from ansible_collections.mlops.deploy.plugins.module_utils import _deploy_lock as dl
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_parameters import ParameterError, ParameterStore

NAME = "/mlops/prod/deploy-lock"
NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def lock_value(run_id="184467", owner="alice@ci-7", release="r-42", acquired=NOW - timedelta(minutes=5), ttl=3600):
    return json.dumps(dl.new_lock(owner, run_id, release, ttl, acquired))


def held(value=None, version=1):
    return {"Parameter": parameter(NAME, value or lock_value(), version)}


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make_lock(client, time=None):
    time = time or FakeTime()
    return dl.DeployLock(ParameterStore(client), NAME, time.clock, time.sleep, now=lambda: NOW, rand=lambda: 0.5), time


# ------------------------------------------------------------- pure parts


def test_lock_name():
    assert dl.lock_name("prod") == NAME
    assert dl.lock_name(name="/team/x/lock") == "/team/x/lock"
    with pytest.raises(ParameterError, match="env 'pr od' cannot be part"):
        dl.lock_name("pr od")


def test_new_lock_fields():
    assert dl.new_lock("alice", "42", "r-1", 600, NOW) == {
        "owner": "alice",
        "run_id": "42",
        "release": "r-1",
        "acquired_at": "2026-11-21T12:00:00Z",
        "expires_at": "2026-11-21T12:10:00Z",
    }


@pytest.mark.parametrize(
    ("value", "run_id", "expected"),
    [
        (lock_value(), "184467", {"ours": True, "stale": False, "age_seconds": 300, "owner": "alice@ci-7"}),
        (lock_value(), "other", {"ours": False, "stale": False, "release": "r-42"}),
        (
            lock_value(acquired=NOW - timedelta(hours=3), ttl=3600),
            "other",
            {"stale": True, "age_seconds": 10800, "expires_at": "2026-11-21T10:00:00Z"},
        ),
        ("locked by bob", "x", {"ours": False, "stale": False, "owner": None, "raw": "locked by bob"}),
        ('{"owner": "x"}', "x", {"ours": False, "run_id": None, "raw": '{"owner": "x"}'}),
    ],
)
def test_describe(value, run_id, expected):
    info = dl.describe(NAME, value, 1, NOW - timedelta(minutes=1), NOW, run_id=run_id)
    for key, want in expected.items():
        assert info[key] == want, key
    assert ("raw" in info) == ("raw" in expected)


def test_describe_falls_back_on_the_parameter_time():
    info = dl.describe(NAME, "not json", 1, NOW - timedelta(minutes=1), NOW)
    assert info["age_seconds"] == 60


def test_holder_text_names_owner_run_release_and_age():
    info = dl.describe(NAME, lock_value(), 1, None, NOW)
    assert dl.holder_text(info) == "alice@ci-7 (run 184467, release r-42) since 2026-11-21T11:55:00Z (5m 0s ago)"
    odd = dl.describe(NAME, "locked by bob", 1, NOW - timedelta(seconds=30), NOW)
    assert dl.holder_text(odd).startswith("an unknown holder (the parameter holds 'locked by bob', not a deploy lock)")


@pytest.mark.parametrize(
    ("attempt", "cap", "rand", "expected"),
    [(0, 5, 0.0, 0.25), (0, 5, 1.0, 0.5), (3, 5, 1.0, 0.5 * 1.6**3), (10, 5, 1.0, 5.0), (10, 5, 0.0, 2.5)],
)
def test_next_delay_grows_jittered_and_capped(attempt, cap, rand, expected):
    assert dl.next_delay(attempt, cap, lambda: rand) == pytest.approx(expected)


# ------------------------------------------------------------- acquire


def test_free_lock_is_taken_with_overwrite_false():
    client = RecordedSSM(get_parameter=[not_found(NAME)], put_parameter=[{"Version": 1}])
    lock, _time = make_lock(client)
    result = lock.acquire("bob@ci", "900", "r-43", ttl=600)
    assert result["changed"]
    assert result["acquired"]
    assert result["lock"]["run_id"] == "900"
    assert result["lock"]["expires_at"] == "2026-11-21T12:10:00Z"
    assert result["lock"]["version"] == 1
    put = client.calls[1][1]
    assert put["Overwrite"] is False
    assert json.loads(put["Value"])["owner"] == "bob@ci"


def test_check_mode_does_not_write():
    client = RecordedSSM(get_parameter=[not_found(NAME)])
    lock, _time = make_lock(client)
    result = lock.acquire("bob@ci", "900", check_mode=True)
    assert result["changed"]
    assert client.operations() == ["get_parameter"]


def test_same_run_is_reentrant():
    lock, _time = make_lock(RecordedSSM(get_parameter=[held()]))
    result = lock.acquire("alice@ci-7", "184467")
    assert result["changed"] is False
    assert result["lock"]["ours"]


def test_held_lock_fails_at_once_naming_the_holder():
    lock, time = make_lock(RecordedSSM(get_parameter=[held()]))
    with pytest.raises(dl.LockHeld) as failed:
        lock.acquire("bob@ci", "900")
    message = str(failed.value)
    assert "deploy lock /mlops/prod/deploy-lock is held by alice@ci-7 (run 184467, release r-42)" in message
    assert "(5m 0s ago)" in message
    assert "force_unlock=true" in message
    assert failed.value.lock["run_id"] == "184467"
    assert time.sleeps == []


def test_wait_polls_until_released_with_growing_jittered_pauses():
    client = RecordedSSM(
        get_parameter=[held(), held(), held(), not_found(NAME)],
        put_parameter=[{"Version": 1}],
    )
    lock, time = make_lock(client)
    result = lock.acquire("bob@ci", "900", wait=60, poll_interval=5)
    assert result["acquired"]
    assert time.sleeps == pytest.approx([0.375, 0.6, 0.96])
    assert result["waited"] == pytest.approx(1.935)


def test_wait_gives_up_at_the_deadline():
    client = RecordedSSM(get_parameter=[held()] * 50)
    lock, time = make_lock(client)
    with pytest.raises(dl.LockHeld, match="waited 10s"):
        lock.acquire("bob@ci", "900", wait=10, poll_interval=2)
    assert sum(time.sleeps) == pytest.approx(10)
    assert max(time.sleeps) <= 2


def test_lost_race_between_read_and_create_reads_the_winner():
    client = RecordedSSM(get_parameter=[not_found(NAME), held()], put_parameter=[ALREADY_EXISTS])
    lock, _time = make_lock(client)
    with pytest.raises(dl.LockHeld, match="held by alice@ci-7 \\(run 184467"):
        lock.acquire("bob@ci", "900")
    assert client.operations() == ["get_parameter", "put_parameter", "get_parameter"]


def test_create_that_keeps_failing_is_reported():
    client = RecordedSSM(get_parameter=[not_found(NAME)] * 6, put_parameter=[ALREADY_EXISTS] * 6)
    lock, _time = make_lock(client)
    with pytest.raises(ParameterError, match="ParameterAlreadyExists.*GetParameter does not find it"):
        lock.acquire("bob@ci", "900")


def test_stale_lock_fails_at_once_even_with_wait():
    stale = held(lock_value(acquired=NOW - timedelta(hours=3)))
    lock, time = make_lock(RecordedSSM(get_parameter=[stale]))
    with pytest.raises(dl.LockHeld) as failed:
        lock.acquire("bob@ci", "900", wait=600)
    assert str(failed.value).startswith(
        "deploy lock /mlops/prod/deploy-lock is stale: held by alice@ci-7 (run 184467, release r-42) "
        "since 2026-11-21T09:00:00Z (3h 0m ago), expired at 2026-11-21T10:00:00Z (2h 0m ago)"
    )
    assert failed.value.lock["stale"]
    assert time.sleeps == []


def test_force_unlock_overwrites_and_says_whose_lock_it_broke():
    stale = held(lock_value(acquired=NOW - timedelta(hours=3)))
    client = RecordedSSM(get_parameter=[stale], put_parameter=[{"Version": 2}])
    lock, _time = make_lock(client)
    result = lock.acquire("bob@ci", "900", force=True)
    assert result["changed"]
    assert result["broken"]["owner"] == "alice@ci-7"
    assert result["msg"].startswith("broke the deploy lock /mlops/prod/deploy-lock of alice@ci-7 (run 184467")
    assert ", stale and took it for run 900" in result["msg"]
    assert client.calls[1][1]["Overwrite"] is True
    assert result["lock"]["version"] == 2


def test_force_unlock_in_check_mode_writes_nothing():
    client = RecordedSSM(get_parameter=[held()])
    lock, _time = make_lock(client)
    result = lock.acquire("bob@ci", "900", force=True, check_mode=True)
    assert result["changed"]
    assert result["msg"].startswith("would break")
    assert client.operations() == ["get_parameter"]


def test_a_value_that_is_not_a_lock_blocks_until_forced():
    lock, _time = make_lock(RecordedSSM(get_parameter=[held("manual hold")]))
    with pytest.raises(dl.LockHeld, match="an unknown holder .*'manual hold'"):
        lock.acquire("bob@ci", "900")


# ------------------------------------------------------------- release


def test_release_own_lock():
    client = RecordedSSM(get_parameter=[held()], delete_parameter=[{}])
    lock, _time = make_lock(client)
    result = lock.release("184467")
    assert result["changed"]
    assert result["released"]
    assert client.operations() == ["get_parameter", "delete_parameter"]


def test_release_of_a_free_lock_changes_nothing():
    lock, _time = make_lock(RecordedSSM(get_parameter=[not_found(NAME)]))
    result = lock.release("184467")
    assert result == {"changed": False, "released": False, "lock": None, "msg": "the lock %s is free" % NAME}


def test_release_leaves_another_runs_lock_alone():
    client = RecordedSSM(get_parameter=[held()])
    lock, _time = make_lock(client)
    result = lock.release("900")
    assert result["changed"] is False
    assert result["released"] is False
    assert "held by alice@ci-7 (run 184467, release r-42)" in result["msg"]
    assert "not by run 900" in result["msg"]
    assert client.operations() == ["get_parameter"]


def test_forced_release_and_check_mode():
    client = RecordedSSM(get_parameter=[held(), held()], delete_parameter=[{}])
    lock, _time = make_lock(client)
    checked = lock.release(None, force=True, check_mode=True)
    assert checked["changed"]
    assert checked["msg"].startswith("would release the lock")
    forced = lock.release(None, force=True)
    assert forced["changed"]
    assert forced["released"]
    assert client.operations() == ["get_parameter", "get_parameter", "delete_parameter"]

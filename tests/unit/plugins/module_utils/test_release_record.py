"""Release records: validation, idempotence, and reading GetParameterHistory pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from recorded_ssm import RecordedSSM, history_item, not_found, parameter

from ansible_collections.mlops.deploy.plugins.module_utils import _release_record as rr
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_parameters import ParameterError, ParameterStore

NAME = "/mlops/prod/releases/titanic"
T0 = datetime(2026, 11, 16, 9, 0, 0, tzinfo=UTC)  # a Monday
DIGEST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/titanic@sha256:" + "9f" * 32
SHA = "ab" * 32


def record(release_id="r-1", result="success", **fields):
    values = {
        "bundle": "s3://mlops-releases/releases/prod/%s.zip" % release_id,
        "bundle_sha256": SHA,
        "manifest_sha256": SHA,
        "digests": {"api": DIGEST},
        "deployed_by": "alice@ci",
    }
    values.update(fields)
    return rr.build_record(release_id, result=result, now=T0, **values)


def item(version, release_id, result="success", when=None, user="arn:aws:iam::123456789012:user/ci"):
    value = rr.encode(record(release_id, result))
    return history_item(NAME, value, version, when or T0 + timedelta(hours=version), user)


def read(items, page=50):
    """The items as ParameterStore.history returns them from GetParameterHistory pages."""
    pages = [items[i : i + page] for i in range(0, len(items), page)] or [[]]
    answers = [
        dict({"Parameters": chunk}, **({"NextToken": str((n + 1) * page)} if n + 1 < len(pages) else {}))
        for n, chunk in enumerate(pages)
    ]
    return ParameterStore(RecordedSSM(get_parameter_history=answers)).history(NAME)


# A week of prod: r-1..r-3 succeed, r-4 fails (hosts rolled back), r-3 is redeployed.
RAW_WEEK = [
    item(1, "r-1", when=T0),  # Monday 09:00
    item(2, "r-2", when=T0 + timedelta(days=1, hours=1)),  # Tuesday 10:00
    item(3, "r-3", when=T0 + timedelta(days=1, hours=6)),  # Tuesday 15:00
    item(4, "r-4", "failed", when=T0 + timedelta(days=2)),  # Wednesday 09:00
    item(5, "r-3", when=T0 + timedelta(days=2, minutes=20)),  # Wednesday 09:20, back on r-3
]
WEEK = read(RAW_WEEK, page=2)  # three pages


# ------------------------------------------------------------------ names


def test_record_names():
    assert rr.record_name("prod", "titanic") == NAME
    assert rr.record_name(name="/x/y") == "/x/y"
    assert rr.record_path("prod") == "/mlops/prod/releases"
    with pytest.raises(ParameterError, match="endpoint 'a/b' cannot be part"):
        rr.record_name("prod", "a/b")


# ------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"release_id": "r 1"}, "release_id 'r 1' must be 1 to 128 letters"),
        ({"release_id": ""}, "release_id '' must be"),
        ({"bundle": "https://bucket/x.zip"}, "is not an s3://<bucket>/<key> URL"),
        ({"bundle": "s3://bucket"}, "is not an s3://<bucket>/<key> URL"),
        ({"bundle_sha256": "ABC"}, "bundle_sha256 must be 64 lowercase hexadecimal"),
        ({"manifest_sha256": "A" * 64}, "manifest_sha256 must be 64 lowercase hexadecimal"),
        ({"digests": {"api": "titanic:latest"}}, "digests.api is 'titanic:latest', not an image pinned to a digest"),
        ({"digests": {"api": "repo@sha256:abc"}}, "not an image pinned to a digest"),
        ({"result": "ok"}, "result must be one of success, failed"),
    ],
)
def test_bad_records_are_refused(fields, message):
    release_id = fields.pop("release_id", "r-1")
    with pytest.raises(ParameterError, match=message):
        rr.build_record(release_id, now=T0, **fields)


def test_record_shape():
    built = record()
    assert built == {
        "release_id": "r-1",
        "bundle": "s3://mlops-releases/releases/prod/r-1.zip",
        "bundle_sha256": SHA,
        "manifest_sha256": SHA,
        "digests": {"api": DIGEST},
        "result": "success",
        "extra": {},
        "deployed_by": "alice@ci",
        "deployed_at": "2026-11-16T09:00:00Z",
    }
    assert json.loads(rr.encode(built)) == built


def test_same_release_ignores_who_and_when():
    a = record()
    assert rr.same_release(a, dict(a, deployed_by="bob", deployed_at="2027-01-01T00:00:00Z"))
    assert not rr.same_release(a, record(result="failed"))
    assert not rr.same_release(a, record(digests={"api": DIGEST.replace("9f", "00", 1)}))
    assert not rr.same_release(a, record(extra={"commit": "abc"}))
    assert rr.same_release(dict(a, extra=None), a)  # absent and empty are the same
    assert not rr.same_release(None, a)
    assert not rr.same_release({"valid": False, "raw": "x"}, a)


# ------------------------------------------------------------------ history


def test_history_newest_first_with_ssm_time_and_writer():
    history = rr.newest_first(WEEK)
    assert [h["version"] for h in history] == [5, 4, 3, 2, 1]
    assert history[0]["release_id"] == "r-3"
    assert history[0]["modified_at"] == "2026-11-18T09:20:00.000Z"
    assert history[0]["modified_by"] == "arn:aws:iam::123456789012:user/ci"
    assert history[0]["valid"] is True


def test_previous_is_what_a_rollback_goes_back_to():
    history = rr.newest_first(WEEK)
    # Current is r-3 (after the failed r-4); going back one release means r-2.
    assert rr.previous_release(history)["release_id"] == "r-2"
    # Just after r-4 failed, the previous successful release is r-3.
    assert rr.previous_release(rr.newest_first(WEEK[:4]))["release_id"] == "r-3"
    assert rr.previous_release(rr.newest_first(WEEK[:1])) is None
    assert rr.previous_release([]) is None


def test_last_successful_and_find_release():
    history = rr.newest_first(WEEK)
    assert rr.last_successful(history)["version"] == 5
    assert rr.last_successful(rr.newest_first(WEEK[:4]))["version"] == 3
    assert rr.find_release(history, "r-3")["version"] == 5
    assert rr.find_release(history, "r-4")["result"] == "failed"  # never succeeded: its newest record
    assert rr.find_release(history, "r-9") is None


@pytest.mark.parametrize(
    ("at", "version"),
    [
        ("2026-11-16T08:59:59Z", None),  # before the first record
        ("2026-11-16T09:00:00Z", 1),
        ("2026-11-17T12:00:00Z", 2),  # Tuesday noon: r-2
        ("2026-11-17T15:00:00Z", 3),
        ("2026-11-18T09:10:00Z", 4),  # the failed r-4 was current
        ("2026-11-30T00:00:00Z", 5),
    ],
)
def test_what_ran_at_a_time(at, version):
    found = rr.running_at(rr.newest_first(WEEK), rr.to_ms(at, "at"))
    if version is None:
        assert found is None
    else:
        assert found["version"] == version


def test_window_of_last_tuesday():
    summary = rr.summarize(NAME, WEEK, since="2026-11-17T00:00:00Z", until="2026-11-18T00:00:00Z")
    assert [h["release_id"] for h in summary["history"]] == ["r-3", "r-2"]
    assert summary["current"]["version"] == 5
    assert summary["previous"]["release_id"] == "r-2"
    assert summary["versions"] == 5
    assert summary["endpoint"] == "titanic"
    assert "release" not in summary


def test_summary_lookups():
    assert rr.summarize(NAME, WEEK, release_id="r-2")["release"]["version"] == 2
    assert rr.summarize(NAME, WEEK, release_id="nope")["release"] is None
    assert rr.summarize(NAME, WEEK, at="2026-11-17T12:00:00Z")["release"]["release_id"] == "r-2"
    with pytest.raises(ParameterError, match="since: cannot read the time 'last tuesday'"):
        rr.summarize(NAME, WEEK, since="last tuesday")


def test_a_version_that_is_not_a_record_is_listed_and_skipped():
    items = read([*RAW_WEEK[:2], history_item(NAME, "hand-written", 3, T0 + timedelta(days=3))])
    summary = rr.summarize(NAME, items)
    assert summary["current"] == {
        "version": 3,
        "modified_at": "2026-11-19T09:00:00.000Z",
        "modified_by": "N/A",
        "valid": False,
        "raw": "hand-written",
    }
    assert summary["previous"]["release_id"] == "r-2"
    assert summary["last_successful"]["release_id"] == "r-2"


def test_empty_history():
    summary = rr.summarize(NAME, [], release_id="r-1")
    assert summary["current"] is None
    assert summary["previous"] is None
    assert summary["history"] == []
    assert summary["release"] is None


# ------------------------------------------------------------------ writing


def test_record_writes_when_the_release_differs():
    current = {"Parameter": parameter(NAME, rr.encode(record("r-1")), 1)}
    client = RecordedSSM(get_parameter=[current], put_parameter=[{"Version": 2, "Tier": "Standard"}])
    result = rr.ReleaseRecorder(ParameterStore(client)).record(NAME, record("r-2"))
    assert result["changed"]
    assert result["record"]["version"] == 2
    assert result["before"]["release_id"] == "r-1"
    put = client.calls[1][1]
    assert put["Overwrite"] is True
    assert put["Type"] == "String"
    assert json.loads(put["Value"])["release_id"] == "r-2"


def test_record_of_the_same_release_writes_nothing():
    current = {"Parameter": parameter(NAME, rr.encode(record("r-1")), 4)}
    client = RecordedSSM(get_parameter=[current])
    again = dict(record("r-1"), deployed_by="bob", deployed_at="2026-12-01T00:00:00Z")
    result = rr.ReleaseRecorder(ParameterStore(client)).record(NAME, again)
    assert result["changed"] is False
    assert result["record"]["deployed_by"] == "alice@ci"  # the first write's
    assert result["record"]["version"] == 4
    assert client.operations() == ["get_parameter"]


def test_record_in_check_mode_and_first_record():
    client = RecordedSSM(get_parameter=[not_found(NAME)])
    result = rr.ReleaseRecorder(ParameterStore(client)).record(NAME, record(), check_mode=True)
    assert result["changed"]
    assert result["before"] is None
    assert result["msg"].startswith("would record in")
    assert client.operations() == ["get_parameter"]


def test_record_over_4kb_is_refused_before_writing():
    client = RecordedSSM(get_parameter=[not_found(NAME)])
    big = record(extra={"notes": "x" * 4000})
    with pytest.raises(ParameterError, match="release record for /mlops/prod/releases/titanic is \\d+ bytes, over"):
        rr.ReleaseRecorder(ParameterStore(client)).record(NAME, big)
    assert client.operations() == ["get_parameter"]

"""SSM Parameter Store calls: which error codes are answers, pagination, names and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import PaginationError
from recorded_ssm import ALREADY_EXISTS, THROTTLED, RecordedSSM, history_item, not_found, parameter

from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_parameters as sp

NAME = "/mlops/prod/deploy-lock"
T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def test_create_answers_none_when_the_parameter_exists():
    client = RecordedSSM(put_parameter=[{"Version": 1, "Tier": "Standard"}, ALREADY_EXISTS])
    store = sp.ParameterStore(client)
    assert store.create(NAME, "{}", "d") == 1
    assert store.create(NAME, "{}", "d") is None
    assert [kwargs["Overwrite"] for _op, kwargs in client.calls] == [False, False]
    assert client.calls[0][1]["Type"] == "String"


def test_other_errors_are_raised():
    store = sp.ParameterStore(RecordedSSM(put_parameter=[THROTTLED], get_parameter=[THROTTLED]))
    with pytest.raises(type(THROTTLED)):
        store.create(NAME, "{}", "d")
    with pytest.raises(type(THROTTLED)):
        store.get(NAME)


def test_get_and_delete_of_a_missing_parameter():
    store = sp.ParameterStore(
        RecordedSSM(get_parameter=[not_found(NAME)], delete_parameter=[not_found(NAME, "DeleteParameter"), {}])
    )
    assert store.get(NAME) is None
    assert store.delete(NAME) is False
    assert store.delete(NAME) is True


def test_get_returns_plain_fields():
    store = sp.ParameterStore(RecordedSSM(get_parameter=[{"Parameter": parameter(NAME, '{"a":1}', 3)}]))
    got = store.get(NAME)
    assert got["value"] == '{"a":1}'
    assert got["version"] == 3
    assert got["last_modified"].tzinfo is not None


def test_history_follows_next_token_to_the_end():
    items = [history_item(NAME, "v%d" % i, i, T0 + timedelta(minutes=i)) for i in range(1, 121)]
    client = RecordedSSM(
        get_parameter_history=[
            {"Parameters": items[:50], "NextToken": "50"},
            {"Parameters": items[50:100], "NextToken": "100"},
            {"Parameters": items[100:]},
        ]
    )
    history = sp.ParameterStore(client).history(NAME)
    assert [h["version"] for h in history] == list(range(1, 121))
    assert [kwargs.get("NextToken") for _op, kwargs in client.calls] == [None, "50", "100"]
    assert all(kwargs["MaxResults"] == 50 for _op, kwargs in client.calls)


def test_history_of_a_missing_parameter_is_empty():
    client = RecordedSSM(get_parameter_history=[not_found(NAME, "GetParameterHistory")])
    assert sp.ParameterStore(client).history(NAME) == []


def test_a_repeated_token_stops_the_history_with_an_error_not_a_loop():
    item = history_item(NAME, "v", 1, T0)
    client = RecordedSSM(
        get_parameter_history=[{"Parameters": [item], "NextToken": "x"}, {"Parameters": [], "NextToken": "x"}]
    )
    with pytest.raises(PaginationError, match="same next token was received twice"):
        sp.ParameterStore(client).history(NAME)
    assert client.operations() == ["get_parameter_history"] * 2


def test_names_under_a_path_are_paginated():
    client = RecordedSSM(
        get_parameters_by_path=[
            {"Parameters": [{"Name": "/mlops/prod/releases/b"}], "NextToken": "t1"},
            {"Parameters": [{"Name": "/mlops/prod/releases/a"}]},
        ]
    )
    assert sp.ParameterStore(client).names_under("/mlops/prod/releases") == [
        "/mlops/prod/releases/a",
        "/mlops/prod/releases/b",
    ]
    assert client.calls[1][1]["NextToken"] == "t1"


@pytest.mark.parametrize("value", ["prod", "eu-west-1.blue", "a_b"])
def test_name_parts_accepted(value):
    assert sp.check_name_part(value, "env") == value


@pytest.mark.parametrize("value", ["", "pro d", "a/b", "prod;rm", None])
def test_name_parts_refused(value):
    with pytest.raises(sp.ParameterError, match="cannot be part of an SSM parameter name"):
        sp.check_name_part(value, "env")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/aws/x", "cannot start with 'aws' or 'ssm'"),
        ("ssm-lock", "cannot start with 'aws' or 'ssm'"),
        ("/a//b", "not a valid SSM parameter name"),
        ("/a b", "not a valid SSM parameter name"),
    ],
)
def test_parameter_names_refused(name, message):
    with pytest.raises(sp.ParameterError, match=message):
        sp.check_parameter_name(name)


def test_times():
    assert sp.iso_utc(T0) == "2026-11-21T10:00:00Z"
    assert sp.iso_utc(T0 + timedelta(microseconds=250_999), milliseconds=True) == "2026-11-21T10:00:00.250Z"
    assert sp.parse_iso("2026-11-21T10:00:00Z") == T0
    assert sp.parse_iso("2026-11-21T11:00:00+01:00") == T0
    assert sp.parse_iso("2026-11-21T10:00:00") == T0  # naive is UTC
    assert sp.parse_iso("yesterday") is None
    assert sp.parse_iso(None) is None
    assert sp.parse_iso(datetime(2026, 11, 21, 10)) == T0


@pytest.mark.parametrize(
    ("seconds", "text"), [(-3, "0s"), (45, "45s"), (725, "12m 5s"), (10_920, "3h 2m"), (187_200, "2d 4h")]
)
def test_human_age(seconds, text):
    assert sp.human_age(seconds) == text


def test_value_size_limit():
    sp.check_value_size(NAME, "x" * 4096, "record")
    with pytest.raises(sp.ParameterError, match="is 4097 bytes, over the 4096 bytes a standard SSM parameter"):
        sp.check_value_size(NAME, "x" * 4097, "record")
    with pytest.raises(sp.ParameterError, match="is 4098 bytes"):
        sp.check_value_size(NAME, "é" * 2049, "record")  # bytes, not characters


def test_default_identity_is_user_at_host():
    user, _sep, host = sp.default_identity().partition("@")
    assert user
    assert host

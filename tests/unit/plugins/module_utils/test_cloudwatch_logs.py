"""Pure parts of the CloudWatch Logs reader, fed with responses shaped as AWS returns them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fake_clock import FakeClock

from ansible_collections.mlops.deploy.plugins.module_utils import _cloudwatch_logs as cw

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
NOW_MS = 1795262400000


def test_now_constant_is_right():
    assert int(NOW.timestamp() * 1000) == NOW_MS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("now", NOW_MS),
        ("30s", NOW_MS - 30_000),
        ("15m", NOW_MS - 15 * 60_000),
        ("2h", NOW_MS - 2 * 3_600_000),
        ("2 hrs ago", NOW_MS - 2 * 3_600_000),
        ("3d", NOW_MS - 3 * 86_400_000),
        ("1w", NOW_MS - 7 * 86_400_000),
        ("2026-11-21T10:00:00Z", NOW_MS - 2 * 3_600_000),
        ("2026-11-21T11:00:00+01:00", NOW_MS - 2 * 3_600_000),
        ("2026-11-21T10:00:00", NOW_MS - 2 * 3_600_000),  # naive is UTC
        ("2026-11-21", NOW_MS - 12 * 3_600_000),
        ("2026-11-21T11:59:59.250Z", NOW_MS - 750),
        ("1795262400", NOW_MS),  # epoch seconds
        ("1795262400000", NOW_MS),  # epoch milliseconds
        (1795262400, NOW_MS),
    ],
)
def test_parse_time(value, expected):
    assert cw.parse_time(value, now=NOW) == expected


@pytest.mark.parametrize("value", ["yesterday", "15 minutes", "2026-13-01", "-5m", "5y"])
def test_parse_time_rejects_with_a_useful_message(value):
    with pytest.raises(cw.LogsError, match="ISO 8601 .* relative age"):
        cw.parse_time(value, now=NOW)


def test_iso_time_round_trip():
    assert cw.iso_time(NOW_MS + 7) == "2026-11-21T12:00:00.007Z"
    assert cw.parse_time(cw.iso_time(NOW_MS + 7)) == NOW_MS + 7


@pytest.mark.parametrize(
    ("step", "output", "expected"),
    [
        (
            "runShellScript",
            "both",
            ["c1/i-1/runShellScript/stdout", "c1/i-1/runShellScript/stderr"],
        ),
        ("aws:runShellScript", "stdout", ["c1/i-1/aws-runShellScript/stdout"]),
        ("aws-runShellScript", "stderr", ["c1/i-1/aws-runShellScript/stderr"]),
        (None, "stdout", ["c1/i-1/runShellScript/stdout"]),
    ],
)
def test_ssm_stream_names(step, output, expected):
    assert cw.ssm_stream_names("c1", "i-1", step, output) == expected


@pytest.mark.parametrize(
    ("name", "output", "expected"),
    [
        ("c1/i-1/runShellScript/stdout", "both", True),
        ("c1/i-2/runShellScript/stderr", "both", True),
        ("c1/i-2/runShellScript/stderr", "stdout", False),
        ("c1/i-1/downloadContent/stdout", "both", False),
        ("c10/i-1/runShellScript/stdout", "both", False),
        ("c1/i-1/runShellScript/stdout/extra", "both", False),
    ],
)
def test_ssm_stream_matches(name, output, expected):
    assert cw.ssm_stream_matches(name, "c1", "runShellScript", output) is expected


def test_ssm_outputs_rejects_unknown():
    with pytest.raises(cw.LogsError, match="stdout, stderr or both"):
        cw.ssm_outputs("all")


def _event(i, stream="s1"):
    return {
        "timestamp": NOW_MS + i,
        "message": f"line {i}",
        "ingestionTime": NOW_MS + i + 5,
        "eventId": f"e{i}",
        "logStreamName": stream,
    }


class PagedLogs:
    """Serves captured GetLogEvents / FilterLogEvents pages keyed by the token sent."""

    def __init__(self, forward=None, backward=None, filtered=None):
        self.forward = dict(forward or {})
        self.backward = dict(backward or {})
        self.filtered = dict(filtered or {})
        self.calls = []

    def get_log_events(self, **params):
        self.calls.append(("get", params))
        pages = self.forward if params.get("startFromHead", True) else self.backward
        return pages[params.get("nextToken")]

    def filter_log_events(self, **params):
        self.calls.append(("filter", params))
        return self.filtered[params.get("nextToken")]


# Shaped as moto and AWS return them: the forward token repeats at the end, and AWS
# may return an empty page with a new token before the end.
FORWARD = {
    None: {"events": [_event(0), _event(1)], "nextForwardToken": "f/1", "nextBackwardToken": "b/0"},
    "f/1": {"events": [], "nextForwardToken": "f/1b", "nextBackwardToken": "b/1"},
    "f/1b": {"events": [_event(2)], "nextForwardToken": "f/2", "nextBackwardToken": "b/2"},
    "f/2": {"events": [], "nextForwardToken": "f/2", "nextBackwardToken": "b/2"},
}


def test_forward_pages_stop_when_the_token_repeats_not_on_an_empty_page():
    client = PagedLogs(forward=FORWARD)
    pages = list(cw.forward_pages(client.get_log_events, {"logGroupName": "g", "logStreamName": "s1"}))
    assert [len(events) for events, _token in pages] == [2, 0, 1, 0]
    assert [call[1].get("nextToken") for call in client.calls] == [None, "f/1", "f/1b", "f/2"]


def test_stream_source_reads_whole_and_resumes_for_follow():
    client = PagedLogs(forward=FORWARD)
    source = cw.StreamSource(client, "g", "s1")
    events, truncated = source.read()
    assert [e["message"] for e in events] == ["line 0", "line 1", "line 2"]
    assert truncated is False
    assert events[0]["stream"] == "s1"
    assert events[0]["time"] == "2026-11-21T12:00:00.000Z"
    # A new event arrives; the next read starts from the last token and sees only it.
    client.forward["f/2"] = {"events": [_event(3)], "nextForwardToken": "f/3"}
    client.forward["f/3"] = {"events": [], "nextForwardToken": "f/3"}
    events, truncated = source.read()
    assert [e["message"] for e in events] == ["line 3"]


def test_stream_source_limit_reports_truncation():
    client = PagedLogs(forward=FORWARD)
    events, truncated = cw.StreamSource(client, "g", "s1").read(limit=2)
    assert [e["message"] for e in events] == ["line 0", "line 1"]
    assert truncated is True


def test_stream_source_limit_equal_to_size_is_not_truncated():
    client = PagedLogs(forward=FORWARD)
    events, truncated = cw.StreamSource(client, "g", "s1").read(limit=3)
    assert len(events) == 3
    assert truncated is False


BACKWARD = {
    None: {"events": [_event(3), _event(4)], "nextForwardToken": "f/4", "nextBackwardToken": "b/3"},
    "b/3": {"events": [_event(1), _event(2)], "nextForwardToken": "f/2", "nextBackwardToken": "b/1"},
    "b/1": {"events": [_event(0)], "nextForwardToken": "f/0", "nextBackwardToken": "b/0"},
    "b/0": {"events": [], "nextForwardToken": "f/0", "nextBackwardToken": "b/0"},
}


def test_read_tail_reads_backwards_only_as_far_as_needed():
    client = PagedLogs(backward=BACKWARD)
    events, truncated = cw.StreamSource(client, "g", "s1").read_tail(3)
    assert [e["message"] for e in events] == ["line 2", "line 3", "line 4"]
    assert truncated is True
    assert len(client.calls) == 2  # never read the oldest page


def test_read_tail_of_a_short_stream_is_whole():
    client = PagedLogs(backward=BACKWARD)
    events, truncated = cw.StreamSource(client, "g", "s1").read_tail(10)
    assert [e["message"] for e in events] == [f"line {i}" for i in range(5)]
    assert truncated is False


FILTERED = {
    None: {"events": [_event(0, "a"), _event(2, "b")], "nextToken": "t1", "searchedLogStreams": []},
    "t1": {"events": [_event(1, "a")], "nextToken": "t2"},
    "t2": {"events": [], "nextToken": "t3"},
    "t3": {"events": [_event(3, "b")]},
}


def test_filter_source_follows_next_token_and_merges_in_time_order():
    client = PagedLogs(filtered=FILTERED)
    source = cw.FilterSource(client, "g", names=["a", "b"], pattern="line")
    events, truncated = source.read()
    assert [(e["stream"], e["message"]) for e in events] == [
        ("a", "line 0"),
        ("a", "line 1"),
        ("b", "line 2"),
        ("b", "line 3"),
    ]
    assert truncated is False
    assert client.calls[0][1]["filterPattern"] == "line"
    assert client.calls[0][1]["logStreamNames"] == ["a", "b"]
    # Read again (follow): the same events come back from the API and are dropped.
    again, _more = source.read()
    assert again == []


def test_filter_source_limit_and_truncation():
    client = PagedLogs(filtered=FILTERED)
    events, truncated = cw.FilterSource(client, "g", names=["a", "b"]).read(limit=2)
    assert len(events) == 2
    assert truncated is True
    # Read on until past the limit, then cut in time order: the earliest two.
    assert [e["message"] for e in events] == ["line 0", "line 1"]


def test_filter_source_splits_stream_names_in_hundreds():
    client = PagedLogs(filtered={None: {"events": []}})
    names = [f"s{i}" for i in range(250)]
    cw.FilterSource(client, "g", names=names).read()
    assert [len(call[1]["logStreamNames"]) for call in client.calls] == [100, 100, 50]


@pytest.mark.parametrize(
    ("count", "expected", "cut"),
    [(None, [1, 2, 3], False), (5, [1, 2, 3], False), (3, [1, 2, 3], False), (2, [2, 3], True), (0, [], True)],
)
def test_take_tail(count, expected, cut):
    assert cw.take_tail([1, 2, 3], count) == (expected, cut)


class GrowingLogs:
    """A log group whose single stream appears after some lookups, then grows one
    event per read until ``total``."""

    def __init__(self, appear_after_reads=2, total=5):
        self.reads = 0
        self.event_reads = 0
        self.appear = appear_after_reads
        self.total = total

    def describe_log_groups(self, **params):
        return {"logGroups": [{"logGroupName": "g"}]}

    def describe_log_streams(self, **params):
        self.reads += 1
        if self.reads <= self.appear:
            return {"logStreams": []}
        return {"logStreams": [{"logStreamName": "c1/i-1/runShellScript/stdout"}]}

    def get_log_events(self, **params):
        self.event_reads += 1
        written = min(self.total, self.event_reads)
        start = int((params.get("nextToken") or "f/0").split("/")[1])
        events = [_event(i) for i in range(start, written)]
        return {"events": events, "nextForwardToken": f"f/{written}"}


def test_follow_waits_for_the_stream_and_stops_on_the_pattern():
    clock = FakeClock()
    reader = cw.LogReader(GrowingLogs())
    result = reader.follow(
        "g",
        {"ssm_command_id": "c1", "instance_id": "i-1", "step": "runShellScript", "output": "stdout"},
        until_pattern=r"line 3$",
        timeout=60,
        poll_interval=2.0,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result["matched"] is True
    assert result["matched_line"] == "line 3"
    assert result["stopped_by"] == "pattern"
    assert [e["message"] for e in result["events"]] == ["line 0", "line 1", "line 2", "line 3"]
    # Backed off while the stream did not exist yet, never above the cap.
    assert clock.sleeps == sorted(clock.sleeps)
    assert clock.sleeps[1] > clock.sleeps[0]
    assert max(clock.sleeps) <= 2.0


def test_follow_times_out_without_the_pattern():
    clock = FakeClock()
    reader = cw.LogReader(GrowingLogs(total=2))
    result = reader.follow(
        "g",
        {"ssm_command_id": "c1", "instance_id": "i-1", "step": "runShellScript", "output": "stdout"},
        until_pattern="never",
        timeout=30,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result["matched"] is False
    assert result["stopped_by"] == "timeout"
    assert len(result["events"]) == 2
    assert clock.now == pytest.approx(30, abs=0.01)
    # Quiet stream: the pause grew to the cap and stayed there.
    assert clock.sleeps[-2] == 2.0


def test_follow_stops_at_max_events():
    clock = FakeClock()
    reader = cw.LogReader(GrowingLogs(appear_after_reads=0, total=50))
    result = reader.follow(
        "g", {"log_stream": "c1/i-1/runShellScript/stdout"}, max_events=3, clock=clock, sleep=clock.sleep
    )
    assert result["stopped_by"] == "max_events"
    assert len(result["events"]) == 3


class RecordingLogs(GrowingLogs):
    def __init__(self):
        super().__init__(appear_after_reads=0, total=1)
        self.kwargs = []

    def describe_log_groups(self, **params):
        self.kwargs.append(params)
        return super().describe_log_groups(**params)

    def describe_log_streams(self, **params):
        self.kwargs.append(params)
        return super().describe_log_streams(**params)

    def get_log_events(self, **params):
        self.kwargs.append(params)
        return super().get_log_events(**params)


def test_every_call_of_the_reader_asks_for_retries():
    """amazon.aws's retrying client retries only calls passing aws_retry=True."""
    client = RecordingLogs()
    cw.LogReader(client).read("g", {"log_stream": "c1/i-1/runShellScript/stdout"})
    assert len(client.kwargs) >= 3
    assert all(params.get("aws_retry") is True for params in client.kwargs)

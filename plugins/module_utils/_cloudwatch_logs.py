# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reading CloudWatch Logs the way a person debugging a deploy needs it.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``cloudwatch_tail`` and ``ssm_run_playbook``.

Plain values in, plain values out. The only thing that talks to AWS is a
``client`` object with the boto3 CloudWatch Logs methods (wrapped with AWSRetry by
the module); everything else is testable with captured responses.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

# AWS API limits.
GET_EVENTS_PAGE_MAX = 10000
FILTER_STREAM_NAMES_MAX = 100
# How far back a repeated filter read looks for late-arriving events.
FOLLOW_LOOKBACK_MS = 30000

_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|wks)\s*(?:ago)?\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class LogsError(Exception):
    """A failure to report to the user as it is: the message says what to fix."""


# --------------------------------------------------------------------------- time


def parse_time(value: object, now: datetime | None = None) -> int | None:
    """Turn ``value`` into epoch milliseconds (int), or None for None/"".

    Accepts an ISO 8601 time (``2026-11-21T10:00:00Z``, offsets, a bare date; naive
    times are UTC), a relative age (``15m``, ``2h``, ``3d``, ``1w``, ``30s``, optional
    "ago"), ``now``, or an integer epoch in seconds (10 digits) or milliseconds (13).
    """
    if value is None or value == "":
        return None
    now = now or datetime.now(timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _epoch_number(int(value))
    text = str(value).strip()
    if text.lower() == "now":
        return _to_ms(now)
    if text.isdigit():
        return _epoch_number(int(text))
    match = _RELATIVE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)[0].lower()
        return _to_ms(now - timedelta(seconds=amount * _UNIT_SECONDS[unit]))
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise LogsError(
            "cannot read the time %r: give an ISO 8601 time (2026-11-21T10:00:00Z), "
            "a relative age (30s, 15m, 2h, 3d, 1w) or 'now'" % (value,)
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return _to_ms(parsed)


def _epoch_number(number: int) -> int:
    # 10 digits or fewer: seconds; more: already milliseconds.
    return number * 1000 if number < 10**11 else number


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso_time(epoch_ms: int) -> str:
    """Epoch milliseconds to an ISO 8601 UTC string with milliseconds."""
    moment = datetime.fromtimestamp(epoch_ms / 1000.0, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (epoch_ms % 1000)


# ------------------------------------------------------------- SSM stream names


def ssm_step_name(step: str | None) -> str:
    """The step part of an SSM stream name: ``aws:runShellScript`` -> ``aws-runShellScript``.

    AWS-ApplyAnsiblePlaybooks writes under its step ``runShellScript``;
    AWS-RunShellScript under its plugin ``aws:runShellScript``, with ``:`` made ``-``.
    """
    return (step or "runShellScript").replace(":", "-")


def ssm_outputs(output: str) -> list[str]:
    if output == "both":
        return ["stdout", "stderr"]
    if output in ("stdout", "stderr"):
        return [output]
    raise LogsError("output must be stdout, stderr or both, not %r" % (output,))


def ssm_stream_names(
    command_id: str, instance_id: str, step: str = "runShellScript", output: str = "both"
) -> list[str]:
    """AWS's stream names for one instance's output of one SSM command."""
    return ["%s/%s/%s/%s" % (command_id, instance_id, ssm_step_name(step), out) for out in ssm_outputs(output)]


def ssm_stream_matches(name: str, command_id: str, step: str = "runShellScript", output: str = "both") -> bool:
    """True when ``name`` is ``<command_id>/<any instance>/<step>/<output>``."""
    parts = name.split("/")
    return (
        len(parts) == 4
        and parts[0] == command_id
        and parts[2] == ssm_step_name(step)
        and parts[3] in ssm_outputs(output)
    )


# ---------------------------------------------------------------- events


def to_event(raw: dict, stream: str | None = None) -> dict:
    """A boto3 event to the returned shape: timestamp (ms), time (ISO), stream, message."""
    timestamp = int(raw.get("timestamp", 0))
    return {
        "timestamp": timestamp,
        "time": iso_time(timestamp),
        "stream": raw.get("logStreamName", stream),
        "message": raw.get("message", ""),
        "event_id": raw.get("eventId"),
    }


def in_window(raw_events: list[dict], end: int | None) -> list[dict]:
    """Drop events at or after ``end`` (ms): the API's endTime is exclusive, and
    enforcing it here keeps every backend (moto includes it) in agreement."""
    if end is None:
        return raw_events
    return [raw for raw in raw_events if raw.get("timestamp", 0) < end]


def sort_events(events: list[dict]) -> list[dict]:
    """Chronological order, stable for events of the same millisecond."""
    return sorted(events, key=lambda event: event["timestamp"])


def take_tail(events: list[dict], count: int) -> tuple[list[dict], bool]:
    """The last ``count`` events, and whether that cut anything off."""
    if count is None or len(events) <= count:
        return events, False
    return (events[-count:] if count > 0 else []), True


def cut(events: list[dict], limit: int | None) -> tuple[list[dict], bool]:
    """The first ``limit`` events, and whether that cut anything off."""
    if limit is None or len(events) <= limit:
        return events, False
    return events[:limit], True


# ------------------------------------------------------------ pagination rules


def forward_pages(fetch: Callable[..., dict], params: dict) -> Iterator[tuple[list[dict], str | None]]:
    """Pages of ``get_log_events`` read forward, as (events, token) tuples.

    Stop rule, as AWS documents it: the end of the stream is reached when the
    ``nextForwardToken`` returned equals the token that was sent. An empty page
    with a new token is not the end. (botocore has no paginator for GetLogEvents.)
    """
    return _stream_pages(fetch, params, "nextForwardToken", params.get("nextToken"))


def backward_pages(fetch: Callable[..., dict], params: dict) -> Iterator[tuple[list[dict], str | None]]:
    """Pages of ``get_log_events`` read from the end backwards; same stop rule."""
    return _stream_pages(fetch, dict(params, startFromHead=False), "nextBackwardToken", None)


def _stream_pages(
    fetch: Callable[..., dict], params: dict, token_key: str, token: str | None
) -> Iterator[tuple[list[dict], str | None]]:
    while True:
        call = dict(params)
        if token:
            call["nextToken"] = token
        response = fetch(**call)
        next_token = response.get(token_key)
        yield response.get("events", []), next_token
        if not next_token or next_token == token:
            return
        token = next_token


def filter_pages(fetch: Callable[..., dict], params: dict) -> Iterator[tuple[list[dict], str | None]]:
    """Pages of ``filter_log_events``, following ``nextToken`` until there is none."""
    token = None
    while True:
        call = dict(params)
        if token:
            call["nextToken"] = token
        response = fetch(**call)
        token = response.get("nextToken")
        yield response.get("events", []), token
        if not token:
            return


# ------------------------------------------------------------------- sources


class StreamSource:
    """One stream read with ``get_log_events``; remembers where it stopped.

    ``read(limit)`` returns the events after the previous read (so a follow loop
    calls it again and again) and whether ``limit`` left events unread.
    """

    def __init__(self, client: Any, group: str, stream: str, start: int | None = None, end: int | None = None) -> None:
        self.client = client
        self.group = group
        self.stream = stream
        self.params = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if start is not None:
            self.params["startTime"] = start
        if end is not None:
            self.params["endTime"] = end
        self.token = None

    def read(self, limit: int | None = None) -> tuple[list[dict], bool]:
        params = dict(self.params)
        if self.token:
            params["nextToken"] = self.token
        if limit is not None:
            params["limit"] = max(1, min(limit + 1, GET_EVENTS_PAGE_MAX))
        events = []
        for page, token in forward_pages(self.client.get_log_events, params):
            events.extend(to_event(raw, self.stream) for raw in in_window(page, self.params.get("endTime")))
            if limit is not None and len(events) > limit:
                # Events past the limit stay unread; the next read starts over from
                # this page's start, so remember only complete pages.
                kept, truncated = cut(events, limit)
                self._resume_after(kept)
                return kept, truncated
            if token:
                self.token = token
        return events, False

    def _resume_after(self, kept: list[dict]) -> None:
        # Resume by time after the last kept event (tokens are per page).
        if kept:
            self.params["startTime"] = kept[-1]["timestamp"] + 1
        self.token = None

    def read_tail(self, count: int) -> tuple[list[dict], bool]:
        """The last ``count`` events, read backwards from the end of the stream."""
        params = dict(self.params)
        params.pop("startFromHead", None)
        params["limit"] = max(1, min(count + 1, GET_EVENTS_PAGE_MAX))
        events = []
        for page, _token in backward_pages(self.client.get_log_events, params):
            events[:0] = [to_event(raw, self.stream) for raw in in_window(page, params.get("endTime"))]
            if len(events) > count:
                break
        return take_tail(events, count)


class FilterSource:
    """Several streams, by name, read with ``filter_log_events``.

    Streams selected by a prefix are listed first and passed by name, which means
    the same on AWS and also holds on backends that ignore ``logStreamNamePrefix``.

    A follow loop calls ``read`` repeatedly: each call asks from the newest
    timestamp already seen and drops the events already returned (by eventId).
    """

    def __init__(
        self,
        client: Any,
        group: str,
        names: list[str],
        start: int | None = None,
        end: int | None = None,
        pattern: str | None = None,
    ) -> None:
        self.client = client
        self.group = group
        self.names = list(names)
        self.start = start
        self.end = end
        self.pattern = pattern
        self.seen = set()

    def _param_sets(self, limit: int | None) -> list[dict]:
        base = {"logGroupName": self.group}
        if self.start is not None:
            base["startTime"] = self.start
        if self.end is not None:
            base["endTime"] = self.end
        if self.pattern:
            base["filterPattern"] = self.pattern
        if limit is not None:
            base["limit"] = max(1, min(limit + 1, GET_EVENTS_PAGE_MAX))
        return [
            dict(base, logStreamNames=self.names[i : i + FILTER_STREAM_NAMES_MAX])
            for i in range(0, len(self.names), FILTER_STREAM_NAMES_MAX)
        ]

    def read(self, limit: int | None = None) -> tuple[list[dict], bool]:
        fresh = []
        keys = set()
        more = False
        for params in self._param_sets(limit):
            for page, _token in filter_pages(self.client.filter_log_events, params):
                for raw in in_window(page, self.end):
                    key = raw.get("eventId") or (raw.get("logStreamName"), raw.get("timestamp"), raw.get("message"))
                    if key in self.seen or key in keys:
                        continue
                    keys.add(key)
                    fresh.append((key, to_event(raw)))
                if limit is not None and len(fresh) > limit:
                    more = True
                    break
            if more:
                break
        fresh.sort(key=lambda item: item[1]["timestamp"])
        if limit is not None and len(fresh) > limit:
            fresh, more = fresh[:limit], True
        # Only what is returned counts as seen: a later read returns the rest.
        self.seen.update(key for key, _event in fresh)
        if fresh:
            # Ask again from a little before the newest event: events of several
            # streams reach CloudWatch out of order; the eventIds drop repeats.
            self.start = max(self.start or 0, fresh[-1][1]["timestamp"] - FOLLOW_LOOKBACK_MS)
        return [event for _key, event in fresh], more


# -------------------------------------------------------------------- reader


class RetryingCalls:
    """Makes every call through ``client`` ask for retries (``aws_retry=True``).

    The client AnsibleAWSModule.client() returns with a ``retry_decorator`` retries
    (jittered backoff on throttling) only the calls that pass ``aws_retry=True``.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return functools.partial(getattr(self._client, name), aws_retry=True)


class LogReader:
    """What cloudwatch_tail does, given a ``logs`` client from
    ``AnsibleAWSModule.client(..., retry_decorator=AWSRetry.jittered_backoff())``;
    every call it makes is retried on throttling."""

    def __init__(self, client: Any, region: str | None = None) -> None:
        self.client = RetryingCalls(client)
        self.region = region or "the configured region"

    # -- existence checks, each with a message that says what to do

    def check_group(self, group: str) -> None:
        response = self.client.describe_log_groups(logGroupNamePrefix=group)
        if not any(g.get("logGroupName") == group for g in response.get("logGroups", [])):
            raise LogsError(
                "log group %s does not exist in %s; check the name and the region "
                "(and that the command was sent with CloudWatch output enabled)" % (group, self.region)
            )

    def list_streams(self, group: str, prefix: str) -> list[str]:
        names = []
        params = {"logGroupName": group, "logStreamNamePrefix": prefix}
        while True:
            response = self.client.describe_log_streams(**params)
            names.extend(s["logStreamName"] for s in response.get("logStreams", []))
            token = response.get("nextToken")
            if not token or token == params.get("nextToken"):
                return names
            params["nextToken"] = token

    def resolve_streams(self, group: str, selection: dict) -> list[str]:
        """Stream names for a selection dict (log_stream / log_stream_prefix / ssm_*)."""
        if selection.get("log_stream"):
            wanted = [selection["log_stream"]]
            existing = self.list_streams(group, selection["log_stream"])
            return [name for name in wanted if name in existing]
        if selection.get("log_stream_prefix") is not None:
            return self.list_streams(group, selection["log_stream_prefix"])
        command_id = selection["ssm_command_id"]
        step, output = selection.get("step"), selection.get("output", "both")
        if selection.get("instance_id"):
            wanted = ssm_stream_names(command_id, selection["instance_id"], step, output)
            prefix = "%s/%s/" % (command_id, selection["instance_id"])
            existing = set(self.list_streams(group, prefix))
            return [name for name in wanted if name in existing]
        return [
            name
            for name in self.list_streams(group, command_id + "/")
            if ssm_stream_matches(name, command_id, step, output)
        ]

    def describe_selection(self, selection: dict) -> str:
        if selection.get("log_stream"):
            return "log stream %s" % selection["log_stream"]
        if selection.get("log_stream_prefix") is not None:
            return "log streams starting with %r" % selection["log_stream_prefix"]
        what = "SSM command %s" % selection["ssm_command_id"]
        if selection.get("instance_id"):
            what += " on %s" % selection["instance_id"]
        return "%s output (step %s, %s)" % (what, ssm_step_name(selection.get("step")), selection.get("output", "both"))

    def source(
        self,
        group: str,
        selection: dict,
        streams: list[str],
        start: int | None = None,
        end: int | None = None,
        pattern: str | None = None,
    ) -> StreamSource | FilterSource:
        if len(streams) == 1 and not pattern and selection.get("log_stream_prefix") is None:
            return StreamSource(self.client, group, streams[0], start, end)
        return FilterSource(self.client, group, names=streams, start=start, end=end, pattern=pattern)

    # -- the two modes

    def read(
        self,
        group: str,
        selection: dict,
        start: int | None = None,
        end: int | None = None,
        pattern: str | None = None,
        max_events: int | None = None,
        tail_lines: int | None = None,
    ) -> dict:
        """Everything the selection holds in the window, whole unless a limit cut it."""
        self.check_group(group)
        streams = self.resolve_streams(group, selection)
        if not streams:
            raise LogsError(
                "no %s in log group %s (%s); check the name, and that the command ran with "
                "CloudWatch output enabled" % (self.describe_selection(selection), group, self.region)
            )
        source = self.source(group, selection, streams, start, end, pattern)
        if tail_lines is not None and max_events is None and isinstance(source, StreamSource):
            events, truncated = source.read_tail(tail_lines)
        else:
            events, truncated = source.read(max_events)
            events, tail_cut = take_tail(events, tail_lines)
            truncated = truncated or tail_cut
        return {"events": events, "streams": streams, "truncated": truncated}

    def follow(
        self,
        group: str,
        selection: dict,
        start: int | None = None,
        end: int | None = None,
        pattern: str | None = None,
        until_pattern: str | None = None,
        max_events: int | None = None,
        timeout: float = 300.0,
        poll_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict:
        """Keep reading until ``until_pattern`` matches, ``max_events`` or ``timeout``.

        Streams that do not exist yet are waited for (an SSM command writes its
        streams only when it starts). Returns what was seen and why it stopped.
        """
        self.check_group(group)
        regex = re.compile(until_pattern) if until_pattern else None
        deadline = clock() + timeout
        events, streams, source = [], [], None
        delay = min(0.25, poll_interval)
        while True:
            if source is None or not selection.get("log_stream"):
                found = self.resolve_streams(group, selection)
                if found and found != streams:
                    streams = found
                    previous_seen = source.seen if isinstance(source, FilterSource) else set()
                    start_at = source.start if isinstance(source, FilterSource) else start
                    source = self.source(group, selection, streams, start_at, end, pattern)
                    if isinstance(source, FilterSource):
                        source.seen = previous_seen
            new = []
            if source is not None:
                remaining = None if max_events is None else max_events - len(events)
                new, _more = source.read(remaining)
            for event in new:
                events.append(event)
                if regex and regex.search(event["message"]):
                    return self._followed(events, streams, "pattern", event)
                if max_events is not None and len(events) >= max_events:
                    return self._followed(events, streams, "max_events")
            if clock() >= deadline:
                return self._followed(events, streams, "timeout")
            # Poll fast while output flows, back off while it is quiet.
            delay = min(0.25, poll_interval) if new else min(delay * 1.5, poll_interval)
            sleep(max(0.0, min(delay, deadline - clock())))

    @staticmethod
    def _followed(events: list[dict], streams: list[str], reason: str, matched_event: dict | None = None) -> dict:
        return {
            "events": events,
            "streams": streams,
            "truncated": reason == "max_events",
            "stopped_by": reason,
            "matched": matched_event is not None,
            "matched_line": matched_event["message"] if matched_event else None,
        }

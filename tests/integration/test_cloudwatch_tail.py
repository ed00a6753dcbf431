"""cloudwatch_tail against moto's CloudWatch Logs, through real ansible-playbook runs.

The log data is written with boto3 here; the assertions about what the module
returns live in the playbooks under targets/cloudwatch_tail (ansible.builtin.assert),
and this file checks that each play passed.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from .conftest import assert_play_ok

BIG = 25_001  # more than two full pages of 10,000 events


def iso_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _put(logs, group, stream, messages, start_ms):
    """Write ``messages`` to ``stream`` in batches of 10,000 (PutLogEvents' limit)."""
    events = [{"timestamp": start_ms + i, "message": m} for i, m in enumerate(messages)]
    for i in range(0, len(events), 10_000):
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i : i + 10_000])


@pytest.fixture(scope="module")
def seeded(aws):
    """A log group holding a big stream, two app streams and the output of an SSM command."""
    logs = aws("logs")
    run = uuid.uuid4().hex[:8]
    group = f"/mlops-test/cwtail-{run}"
    logs.create_log_group(logGroupName=group)
    base = int(time.time() * 1000) - 3_600_000  # an hour ago

    logs.create_log_stream(logGroupName=group, logStreamName="big")
    _put(logs, group, "big", [f"event {i:05d}" for i in range(BIG)], base)

    for name, offset in (("app/web-1", 0), ("app/web-2", 500)):
        logs.create_log_stream(logGroupName=group, logStreamName=name)
        lines = [f"{name} INFO request {i}" if i % 10 else f"{name} ERROR boom {i}" for i in range(40)]
        _put(logs, group, name, lines, base + offset)

    command_id = str(uuid.uuid4())
    for instance in ("i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"):
        for step, out in (("runShellScript", "stdout"), ("runShellScript", "stderr"), ("downloadContent", "stdout")):
            stream = f"{command_id}/{instance}/{step}/{out}"
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            _put(logs, group, stream, [f"{instance} {step} {out} line {i}" for i in range(3)], base + 1000)

    return {"group": group, "command_id": command_id, "base": base, "logs": logs}


def test_read_modes(playbook, seeded):
    """Whole stream of 25,001 events, tail, max_events, filter, windows, SSM names, check mode."""
    result = playbook.run(
        "cloudwatch_tail/read.yml",
        {
            "group": seeded["group"],
            "command_id": seeded["command_id"],
            "big_count": BIG,
            "base_ms": seeded["base"],
            "window_since_iso": iso_ms(seeded["base"] + 20_000),
            "window_until_ms": str(seeded["base"] + 20_010),
        },
    )
    assert_play_ok(result)


def test_bad_inputs_fail_clearly(playbook, seeded):
    result = playbook.run("cloudwatch_tail/bad_input.yml", {"group": seeded["group"]})
    assert_play_ok(result)


def test_follow_ends_on_a_line_written_while_following(playbook, seeded):
    """The stream does not exist when the play starts; a writer creates it and writes
    lines, the ready line last. The module must wait for the stream and stop on it."""
    logs, group = seeded["logs"], seeded["group"]
    stream = f"follow-{uuid.uuid4().hex[:6]}"
    proc = playbook.start("cloudwatch_tail/follow.yml", {"group": group, "stream": stream})
    started = int(time.time() * 1000)

    def writer():
        # Wait until the play is really following: its module process is polling the
        # group (we see it as the play's output reaching the follow task).
        time.sleep(0)  # yield to the reader thread first
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        for i in range(5):
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": int(time.time() * 1000), "message": f"loading shard {i}"}],
            )
            time.sleep(0.3)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": int(time.time() * 1000), "message": "model server ready on :8080"}],
        )

    # Start writing only once the play reached the follow task.
    lines = []
    thread = None
    for line in proc.stdout:
        lines.append(line)
        if thread is None and "TASK [Follow until the ready line]" in line:
            thread = threading.Thread(target=writer, daemon=True)
            thread.start()
    proc.wait(timeout=120)
    output = "".join(lines)
    assert thread is not None, output
    assert proc.returncode == 0, output
    assert "failed=0" in output, output
    # The matched line was written after the play started following.
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    assert events[-1]["message"] == "model server ready on :8080"
    assert events[0]["timestamp"] >= started


def test_follow_timeout(playbook, seeded):
    result = playbook.run("cloudwatch_tail/follow_timeout.yml", {"group": seeded["group"]})
    assert_play_ok(result)

"""The status lifecycle of Run Command, observed on light instances that really run the scripts.

The slow cases (delivery timeout on an offline instance, an instance killed mid-run) are
started together by one fixture and checked first, so their waits overlap.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .conftest import invocations, wait_command, wait_for

DELIVERY_TIMEOUT = 30  # the smallest TimeoutSeconds AWS accepts


def shell(ssm, ids: list[str], commands: list[str], **extra) -> str:
    return ssm.send_command(
        InstanceIds=ids,
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": commands, **extra.pop("p", {})},
        **extra,
    )["Command"]["CommandId"]


def ping(ssm, iid: str) -> str:
    info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [iid]}])
    return info["InstanceInformationList"][0]["PingStatus"]


@pytest.fixture(scope="module")
def fleet(control):
    name = f"statuses-{uuid.uuid4().hex[:6]}"
    with control.fleet("light", 8, name=name, env="test") as found:
        yield sorted(i["instance_id"] for i in found)


@pytest.fixture(scope="module", autouse=True)
def stalled(control, ssm, fleet, fast_connection_lost):
    """Start the slow cases first (their waits overlap the other tests): an offline
    instance, and one killed while it runs a command (ConnectionLost after 10 s of silence
    here, not AWS's minutes)."""
    offline, killed = fleet[6], fleet[7]
    control.offline([offline])
    control.kill([killed], on="start", after=1)
    started = time.monotonic()
    to_offline = shell(ssm, [offline], ["echo never"], TimeoutSeconds=DELIVERY_TIMEOUT)
    to_killed = shell(
        ssm, [killed], ["sleep 20", "echo done"], TimeoutSeconds=DELIVERY_TIMEOUT, p={"executionTimeout": ["5"]}
    )
    yield {"offline": (offline, to_offline), "killed": (killed, to_killed), "started": started}
    control.online([offline, killed])


def test_offline_instance_times_out_delivery(aws, ssm, stalled):
    iid, command_id = stalled["offline"]
    wait_for(lambda: ping(ssm, iid) == "ConnectionLost", 45, "PingStatus ConnectionLost of the stopped agent")
    statuses = set()

    def ended():
        inv = invocations(ssm, command_id)[iid]
        statuses.add(inv["Status"])
        return inv["Status"] == "TimedOut"

    wait_for(ended, DELIVERY_TIMEOUT + 30, "the delivery timeout")
    assert "Delayed" in statuses  # delivery was tried and did not get through
    command = aws("ssm", "list-commands", "--command-id", command_id)["Commands"][0]
    assert (command["Status"], command["StatusDetails"]) == ("TimedOut", "DeliveryTimedOut")
    assert (command["DeliveryTimedOutCount"], command["ErrorCount"]) == (1, 0)
    got = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert (got["StatusDetails"], got["ResponseCode"], got["ExecutionStartDateTime"]) == ("DeliveryTimedOut", -1, "")


def test_instance_killed_mid_run_expires(aws, ssm, stalled):
    iid, command_id = stalled["killed"]
    wait_for(lambda: invocations(ssm, command_id)[iid]["Status"] == "InProgress", 30, "the command to start")
    wait_for(lambda: ping(ssm, iid) == "ConnectionLost", 45, "PingStatus ConnectionLost of the killed instance")
    command = wait_command(ssm, command_id, timeout=DELIVERY_TIMEOUT + 5 + 30)
    # Started but never answered: it expires with the command (delivery + execution timeout).
    assert (command["Status"], command["StatusDetails"]) == ("TimedOut", "DeliveryTimedOut")
    expires = command["ExpiresAfter"].timestamp() - command["RequestedDateTime"].timestamp()
    assert expires == pytest.approx(DELIVERY_TIMEOUT + 5, abs=0.01)
    got = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert got["ExecutionStartDateTime"] != ""
    assert "done" not in got["StandardOutputContent"]


def test_success_and_failure_exit_codes(aws, ssm, fleet):
    ok, bad = fleet[0], fleet[1]
    wait_command(ssm, shell(ssm, [bad], ["touch /tmp/fail"]))  # only this one will fail
    command_id = aws(
        "ssm",
        "send-command",
        "--document-name",
        "AWS-RunShellScript",
        "--instance-ids",
        ok,
        bad,
        "--max-errors",
        "1",
        "--parameters",
        json.dumps({"commands": ["if [ -e /tmp/fail ]; then echo failing >&2; exit 3; fi", "echo fine"]}),
    )["Command"]["CommandId"]
    command = wait_command(ssm, command_id)
    # One error within MaxErrors=1: AWS's Success that is not a success on every target.
    assert (command["Status"], command["StatusDetails"]) == ("Success", "Incomplete")
    assert (command["CompletedCount"], command["ErrorCount"]) == (2, 1)
    failed = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", bad)
    assert (failed["Status"], failed["StatusDetails"], failed["ResponseCode"]) == ("Failed", "Failed", 3)
    assert failed["StandardErrorContent"] == "failing\n"
    fine = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", ok)
    assert (fine["Status"], fine["ResponseCode"], fine["StandardOutputContent"]) == ("Success", 0, "fine\n")


def test_execution_timeout(aws, ssm, fleet):
    iid = fleet[2]
    command_id = shell(ssm, [iid], ["echo started", "sleep 30", "echo never"], p={"executionTimeout": ["2"]})
    command = wait_command(ssm, command_id, timeout=60)
    assert (command["Status"], command["StatusDetails"], command["ErrorCount"]) == ("TimedOut", "ExecutionTimedOut", 1)
    got = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert (got["Status"], got["StatusDetails"], got["ResponseCode"]) == ("TimedOut", "ExecutionTimedOut", 137)
    assert got["StandardOutputContent"] == "started\n"
    elapsed = got["ExecutionElapsedTime"]  # ISO 8601 duration: PT2.013S
    assert elapsed.startswith("PT")
    assert elapsed.endswith("S")
    assert 2.0 <= float(elapsed[2:-1]) < 4.0


def test_cancel_mid_run(aws, ssm, fleet):
    iid = fleet[3]
    marker = f"/tmp/cancelled-{uuid.uuid4().hex[:6]}"
    command_id = shell(ssm, [iid], ["echo running", "sleep 60", f"touch {marker}"])
    wait_for(
        lambda: "running" in ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)["StandardOutputContent"],
        30,
        "the script to run",
    )
    aws("ssm", "cancel-command", "--command-id", command_id)
    seen = {ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"]}
    command = wait_command(ssm, command_id, timeout=30)
    seen.add(command["Status"])
    assert seen <= {"Cancelling", "Cancelled"}
    assert (command["Status"], command["StatusDetails"]) == ("Cancelled", "Cancelled")
    got = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert (got["Status"], got["ResponseCode"]) == ("Cancelled", 137)
    # The process really stopped: nothing is left sleeping and the marker never appears.
    check = shell(
        ssm, [iid], [f"sleep 1; pgrep -f 'sleep 60' || echo no-sleep; ls {marker} 2>/dev/null || echo no-marker"]
    )
    wait_command(ssm, check)
    out = ssm.get_command_invocation(CommandId=check, InstanceId=iid)["StandardOutputContent"]
    assert out == "no-sleep\nno-marker\n"


def test_max_errors_zero_stops_the_rest(aws, ssm, fleet):
    targets = fleet[:4]
    command_id = aws(
        "ssm",
        "send-command",
        "--document-name",
        "AWS-RunShellScript",
        "--instance-ids",
        *targets,
        "--max-concurrency",
        "1",
        "--max-errors",
        "0",
        "--parameters",
        json.dumps({"commands": ["echo trying; exit 1"]}),
    )["Command"]["CommandId"]
    command = wait_command(ssm, command_id, timeout=60)
    assert (command["Status"], command["StatusDetails"]) == ("Failed", "Failed")
    assert (command["TargetCount"], command["CompletedCount"], command["ErrorCount"]) == (4, 4, 1)
    listed = aws("ssm", "list-command-invocations", "--command-id", command_id, "--details")["CommandInvocations"]
    states = sorted((inv["Status"], inv["StatusDetails"]) for inv in listed)
    assert states == [("Cancelled", "Terminated")] * 3 + [("Failed", "Failed")]
    stopped = [inv for inv in listed if inv["StatusDetails"] == "Terminated"]
    assert all(inv["CommandPlugins"][0]["ResponseCode"] == -1 for inv in stopped)  # never ran


def test_max_concurrency_one_runs_one_at_a_time(aws, ssm, fleet):
    targets = fleet[:4]
    command_id = aws(
        "ssm",
        "send-command",
        "--document-name",
        "AWS-RunShellScript",
        "--instance-ids",
        *targets,
        "--max-concurrency",
        "1",
        "--parameters",
        json.dumps({"commands": ["date +%s.%N", "sleep 1", "date +%s.%N"]}),
    )["Command"]["CommandId"]
    command = wait_command(ssm, command_id, timeout=60)
    assert command["Status"] == "Success"
    spans = []
    for iid in targets:
        out = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
        start, end = (float(x) for x in out["StandardOutputContent"].split())
        spans.append((start, end))
    spans.sort()
    # As the instances' own clocks saw it: each run ended before the next began.
    assert all(prev[1] < nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False)), spans


def test_max_concurrency_percent_allows_that_many_together(ssm, fleet):
    targets = fleet[:4]
    command_id = shell(ssm, targets, ["date +%s.%N", "sleep 2", "date +%s.%N"], MaxConcurrency="50%")
    wait_command(ssm, command_id, timeout=60)
    spans = []
    for iid in targets:
        out = ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)["StandardOutputContent"]
        spans.append(tuple(float(x) for x in out.split()))
    most = max(sum(1 for s in spans if s[0] <= t < s[1]) for t, _ in spans)
    assert most == 2, spans


def test_delivery_delay_fault(control, ssm, fleet):
    iid = fleet[4]
    control.delay_delivery(4, [iid])
    try:
        command_id = shell(ssm, [iid], ["true"])
        inv = invocations(ssm, command_id)[iid]
        assert inv["Status"] in ("Pending", "Delayed")
        wait_command(ssm, command_id, timeout=60)
        plugin = invocations(ssm, command_id)[iid]["CommandPlugins"][0]
        waited = plugin["ResponseStartDateTime"].timestamp() - inv["RequestedDateTime"].timestamp()
        assert waited >= 4
    finally:
        control.delay_delivery(0, [iid])


def test_undeliverable_when_the_instance_is_gone(ssm, control):
    name = f"gone-{uuid.uuid4().hex[:6]}"
    (sim,) = control.add_instances("simulated", 1, name=name, duration=1)
    iid = sim["instance_id"]
    try:
        control.offline([iid])
        command_id = shell(ssm, [iid], ["true"])
        wait_for(lambda: invocations(ssm, command_id)[iid]["Status"] == "Delayed", 20, "delivery to be Delayed")
    finally:
        control.remove_instances(name=name)
    inv = wait_for(
        lambda: (i := invocations(ssm, command_id)[iid])["StatusDetails"] == "Undeliverable" and i, 20, "Undeliverable"
    )
    assert (inv["Status"], inv["CommandPlugins"][0]["ResponseCode"]) == ("Failed", -1)
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    # Undeliverable counts neither as an error nor against Success (AWS's rule).
    assert (command["CompletedCount"], command["ErrorCount"]) == (1, 0)
    with pytest.raises(ssm.exceptions.InvalidInstanceId):
        shell(ssm, [iid], ["true"])

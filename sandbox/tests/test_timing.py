"""AWS's timing in the SSM service: ConnectionLost minutes after an agent went silent (a
setting tests shorten), a per-call latency, and eventual consistency right after
SendCommand (ListCommandInvocations empty for a moment)."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from mlops_sandbox.client import SandboxControlError
from mlops_sandbox.ssm.timing import AWS_CONNECTION_LOST_AFTER, Settings, Timing, parse_latency

from .conftest import BIN, wait_for


@pytest.fixture
def timing(control):
    """The settings as the test leaves them are put back afterwards."""
    before = {k: v for k, v in control.settings().items() if k != "start"}
    yield control
    control.settings(**before)


@pytest.fixture(scope="module")
def sim(control):
    name = f"timing-{uuid.uuid4().hex[:6]}"
    with control.fleet("simulated", 1, name=name, duration=0.5) as found:
        yield found[0]["instance_id"]


def ping(ssm, iid: str) -> str:
    info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [iid]}])
    return info["InstanceInformationList"][0]["PingStatus"]


# -- the settings themselves (plain values) -----------------------------------------------------


def test_defaults_are_aws_timing():
    settings = Timing().state()
    assert settings["connection_lost_after"] == AWS_CONNECTION_LOST_AFTER == 600
    assert settings["latency"] == [0.0, 0.0]
    assert settings["list_lag"] == 0.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"connection_lost_after": 0}, "between 1 and 86400"),
        ({"connection_lost_after": "soon"}, "a number of seconds"),
        ({"latency": [0.08, 0.02]}, "low 0.08 is above high 0.02"),
        ({"latency": [0.02]}, "[low, high]"),
        ({"list_lag": -1}, "between 0 and 600"),
        ({"ping": 3}, "unknown setting(s) ping"),
    ],
)
def test_bad_settings_change_nothing_and_say_why(body, message):
    timing = Timing(Settings(connection_lost_after=30))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        timing.update({"list_lag": 5, **body})
    assert timing.state()["list_lag"] == 0.0  # the valid part of the request was not applied either
    assert timing.state()["connection_lost_after"] == 30


def test_latency_as_the_environment_writes_it():
    assert parse_latency("0.02-0.08") == (0.02, 0.08)
    assert parse_latency("0.05") == (0.05, 0.05)
    assert parse_latency("0") == (0.0, 0.0)
    with pytest.raises(ValueError, match="LOW-HIGH"):
        parse_latency("fast")


# -- the running service ------------------------------------------------------------------------


def test_a_silent_agent_stays_online_for_minutes_unless_told_otherwise(ssm, timing, sim):
    control = timing
    control.settings(connection_lost_after=AWS_CONNECTION_LOST_AFTER)
    control.offline([sim])
    try:
        time.sleep(2.5)
        assert ping(ssm, sim) == "Online"  # AWS: a dead agent is Online for minutes
        control.settings(connection_lost_after=2)
        assert ping(ssm, sim) == "ConnectionLost"  # 2.5 s of silence is more than 2
    finally:
        control.online([sim])
    wait_for(lambda: ping(ssm, sim) == "Online", 10, "the agent Online again")


def test_latency_holds_every_call(ssm, timing):
    control = timing

    def median_call() -> float:
        took = []
        for _ in range(5):
            start = time.monotonic()
            ssm.list_commands(MaxResults=5)
            took.append(time.monotonic() - start)
        return sorted(took)[2]

    control.settings(latency=[0, 0])
    quick = median_call()
    control.settings(latency=[0.2, 0.25])
    held = median_call()
    assert held >= 0.2, held
    assert held - quick >= 0.18, (quick, held)
    # Parameter Store goes to moto through the same endpoint: held too.
    start = time.monotonic()
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=f"/timing/{uuid.uuid4().hex}")
    assert time.monotonic() - start >= 0.2


def test_invocations_are_listed_a_moment_after_send_command(ssm, timing, sim):
    control = timing
    control.settings(list_lag=3)
    sent = ssm.send_command(InstanceIds=[sim], DocumentName="AWS-RunShellScript", Parameters={"commands": ["true"]})
    command_id = sent["Command"]["CommandId"]
    assert ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"] == []
    with pytest.raises(ssm.exceptions.InvocationDoesNotExist):
        ssm.get_command_invocation(CommandId=command_id, InstanceId=sim)
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert (command["Status"], command["CompletedCount"]) == ("Pending", 0)
    listed = wait_for(
        lambda: ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"], 10, "the invocation listed"
    )
    assert [i["InstanceId"] for i in listed] == [sim]
    done = wait_for(
        lambda: (c := ssm.list_commands(CommandId=command_id)["Commands"][0])["Status"] == "Success" and c,
        10,
        "the command to succeed",
    )
    assert done["CompletedCount"] == 1


def test_settings_from_the_cli_and_bad_input(sandbox_env, timing):
    def cli(*args):
        argv = [str(BIN / "mlops-sandbox"), "settings", *args]
        return subprocess.run(argv, env=sandbox_env, capture_output=True, text=True, check=False)

    done = cli("--connection-lost-after", "42", "--latency", "0.01-0.02", "--list-lag", "1")
    assert done.returncode == 0, done.stderr
    assert '"connection_lost_after": 42.0' in done.stdout
    assert timing.settings()["latency"] == [0.01, 0.02]
    refused = cli("--latency", "0.2-0.1")
    assert refused.returncode == 1
    assert "low 0.2 is above high 0.1" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert timing.settings()["latency"] == [0.01, 0.02]  # unchanged
    with pytest.raises(SandboxControlError, match="unknown setting"):
        timing.settings(speed=1)
    back = cli("--reset")
    assert back.returncode == 0
    assert timing.settings()["connection_lost_after"] == timing.settings()["start"]["connection_lost_after"]

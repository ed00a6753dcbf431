"""A host that dies mid-deploy (``_ssm_watch``): the watcher reads PingStatus and EC2 state
of the instances still running, at most once a minute; the rollout then fails the batch
naming the lost instance, long before its timeout. Fed with recorded SSM and EC2 answers
(recorded_ssm), on a clock that moves only when the code sleeps."""

from __future__ import annotations

from datetime import timedelta

from botocore.exceptions import ClientError
from fake_clock import FakeClock
from recorded_ssm import CMD, I1, I2, I3, RECAP_OK, T0, Again, RecordedClient, RecordedSSM, command, invocation

from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import SsmApi
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_follow import LOST, Follower, Poll
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_options import RolloutOptions
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_rollout import Rollout
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_run import iso_utc
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_watch import HostWatcher, lost_reasons

LAST_PING = T0 - timedelta(minutes=11)


def info(instance_id, status="Online", last_ping=T0):
    return {"InstanceId": instance_id, "PingStatus": status, "LastPingDateTime": last_ping}


def information(*entries):
    return {"InstanceInformationList": list(entries)}


def reservations(**states):
    """DescribeInstances' answer: instance ID -> state name."""
    return {
        "Reservations": [
            {"ReservationId": "r-1", "Instances": [{"InstanceId": i, "State": {"Name": s}} for i, s in states.items()]}
        ]
    }


def ec2(*answers):
    return RecordedClient("ec2", describe_instances=list(answers))


def poll(running, elapsed=61.0):
    return Poll(1, elapsed, False, None, 0, running=running)


# ------------------------------------------------------------------ the reasons, plain


def test_each_way_to_be_lost_is_named_the_ec2_state_first():
    found = lost_reasons(
        [I1, I2, I3, "i-0aaaaaaaaaaaaaaa4", "i-0aaaaaaaaaaaaaaa5"],
        [info(I1), info(I2, "ConnectionLost", LAST_PING), info(I3, "ConnectionLost")],
        reservations(
            **{I1: "running", I2: "running", I3: "stopped", "i-0aaaaaaaaaaaaaaa4": "running"},
        )["Reservations"],
    )
    assert found == {
        I2: "lost its SSM agent (ConnectionLost since 2026-11-21T09:49:00Z)",
        I3: "stopped running (EC2 state stopped)",
        "i-0aaaaaaaaaaaaaaa4": "is no longer managed by SSM (DescribeInstanceInformation does not list it)",
        "i-0aaaaaaaaaaaaaaa5": "is gone from EC2 (DescribeInstances does not list it)",
    }


def test_without_ec2_the_agent_alone_decides():
    assert lost_reasons([I1, I2], [info(I1), info(I2, "Inactive", LAST_PING)], None) == {
        I2: "lost its SSM agent (Inactive since 2026-11-21T09:49:00Z)"
    }


def test_a_ping_time_reads_in_utc_whatever_its_zone():
    from datetime import timezone

    assert iso_utc(T0.astimezone(timezone(timedelta(hours=2)))) == "2026-11-21T10:00:00Z"
    assert iso_utc(T0.replace(tzinfo=None)) == "2026-11-21T10:00:00Z"


# ------------------------------------------------------------------ the watcher


def test_the_watcher_looks_after_a_minute_at_most_once_a_minute_only_at_running_instances():
    ssm = RecordedSSM(
        describe_instance_information=[
            information(info(I1), info(I2)),
            information(info(I2, "ConnectionLost", LAST_PING)),
        ]
    )
    clock = FakeClock()
    watcher = HostWatcher(SsmApi(ssm, ec2(reservations(**{I1: "running", I2: "running"}),
                                          reservations(**{I2: "running"}))), clock)  # fmt: skip
    assert watcher(poll([I1, I2], elapsed=30)) == {}  # the pre-flight check has just seen them
    clock.now = 61
    assert watcher(poll([I1, I2])) == {}
    clock.now = 100
    assert watcher(poll([I2], elapsed=100)) == {}  # 39 s after the last look: not yet
    clock.now = 125
    assert watcher(poll([I2], elapsed=125)) == {I2: "lost its SSM agent (ConnectionLost since 2026-11-21T09:49:00Z)"}
    assert watcher.looks == 2
    assert ssm.calls[1] == (
        "describe_instance_information",
        {"Filters": [{"Key": "InstanceIds", "Values": [I2]}], "MaxResults": 50},
    )
    assert watcher(poll([])) == {}  # nothing running: no call
    assert len(ssm.calls) == 2


def test_over_fifty_running_the_watcher_asks_for_the_unwell_ones_a_page_each():
    fleet = ["i-%017x" % n for n in range(1000)]
    ssm = RecordedSSM(
        describe_instance_information=[information(info(fleet[7], "ConnectionLost", LAST_PING), info(I1, "Inactive"))]
    )
    ec2_client = ec2(reservations(**{fleet[9]: "stopped", I2: "terminated"}))
    clock = FakeClock()
    clock.now = 61
    found = HostWatcher(SsmApi(ssm, ec2_client), clock)(poll(fleet))
    assert found == {
        fleet[7]: "lost its SSM agent (ConnectionLost since 2026-11-21T09:49:00Z)",
        fleet[9]: "stopped running (EC2 state stopped)",
    }  # I1 and I2 are not running this command; every other instance is fine
    assert ssm.calls == [
        (
            "describe_instance_information",
            {"Filters": [{"Key": "PingStatus", "Values": ["ConnectionLost", "Inactive"]}], "MaxResults": 50},
        )
    ]
    assert ec2_client.calls == [
        (
            "describe_instances",
            {
                "Filters": [
                    {"Name": "instance-state-name", "Values": ["stopping", "stopped", "shutting-down", "terminated"]}
                ],
                "MaxResults": 1000,
            },
        )
    ]


def test_a_role_without_ec2_rights_is_watched_by_ssm_alone():
    refused = ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "DescribeInstances")
    ssm = RecordedSSM(describe_instance_information=[information(info(I1)), information(info(I1))])
    ec2_client = ec2(refused)
    clock = FakeClock()
    watcher = HostWatcher(SsmApi(ssm, ec2_client), clock)
    clock.now = 61
    assert watcher(poll([I1])) == {}
    clock.now = 122
    assert watcher(poll([I1], elapsed=122)) == {}
    assert ec2_client.operations() == ["describe_instances"]  # asked once, not again


def test_the_counters_mode_gives_the_watcher_the_open_commands_instances():
    """Over 50 instances: ListCommands' counters; a command with one invocation left,
    that of a lost instance, is listed and the wait ends."""
    c2 = "1a2b3c4d-0000-4000-8000-000000000002"
    first = ["i-%017x" % n for n in range(50)]
    second = ["i-%017x" % n for n in range(50, 60)]
    ssm = RecordedSSM(
        list_commands=[
            {"Commands": [command(CMD, "Success", 50, 50), command(c2, "InProgress", 10, 9)]},
        ],
        list_command_invocations=[{"CommandInvocations": []}],
        cancel_command=[{}],
    )
    seen = []

    def watcher(p):
        seen.append(sorted(p.running))
        return {second[3]: "stopped running (EC2 state stopped)"}

    clock = FakeClock()
    follower = Follower(SsmApi(ssm), clock, clock.sleep, watchers=[watcher])
    sends = [
        {"command_id": CMD, "instance_ids": first, "requested": "2026-11-21T10:00:00Z"},
        {"command_id": c2, "instance_ids": second, "requested": "2026-11-21T10:00:00Z"},
    ]
    assert follower.follow(sends, first + second, deadline=600) == LOST
    assert seen == [sorted(second)]  # the open command's instances, not the finished one's
    assert ("cancel_command", {"CommandId": c2, "InstanceIds": [second[3]]}) in ssm.calls


# ------------------------------------------------------------------ the rollout, watched by default


def test_an_instance_dead_at_the_start_fails_its_batch_in_about_a_minute_not_the_timeout():
    """Pre-flight sees it Online; its invocation stays InProgress (the agent that would end
    it is gone); its agent turns ConnectionLost. The rollout names it within a look of the
    watcher, with the timeout far away."""
    ssm = RecordedSSM(
        describe_instance_information=[
            information(info(I1), info(I2)),  # pre-flight
            information(info(I1, "ConnectionLost", LAST_PING)),  # the watcher's first look
        ],
        send_command=[{"Command": {"CommandId": CMD, "RequestedDateTime": T0, "Status": "Pending"}}],
        list_command_invocations=[
            Again(invocations(invocation(I1, "InProgress"), invocation(I2, "Success", rc=0, output=RECAP_OK))),
        ],
        cancel_command=[{}],
    )
    clock = FakeClock()
    options = RolloutOptions.defaults(playbook_url="s3://releases/r42.zip", playbook_file="deploy.yml",
                                      instance_ids=[I1, I2], timeout=900)  # fmt: skip
    api = SsmApi(ssm, ec2(reservations(**{I1: "running"})), None, "eu-west-1")
    result, failure = Rollout(api, options, clock=clock, sleep=clock.sleep).run()
    assert failure.startswith(
        "1 instance failed in batch 1/1:\n  %s lost its SSM agent (ConnectionLost since 2026-11-21T09:49:00Z); "
        "its invocation was cancelled" % I1
    ), failure
    assert 60 <= clock.now < 70, clock.now  # one look of the watcher, not the 900 s timeout
    assert result["timed_out"] is False
    assert {s["instance_id"]: s["outcome"] for s in result["instances"]} == {I1: "lost", I2: "success"}
    assert ("cancel_command", {"CommandId": CMD, "InstanceIds": [I1]}) in ssm.calls


def test_an_empty_listing_right_after_send_is_not_read_as_no_instance_ran():
    """SSM's list lag (aws-cli#3546): ListCommandInvocations answers [] for a moment after
    SendCommand; the follower waits for the invocations instead of failing the instance."""
    ssm = RecordedSSM(
        describe_instance_information=[information(info(I1))],
        send_command=[{"Command": {"CommandId": CMD, "RequestedDateTime": T0, "Status": "Pending"}}],
        list_command_invocations=[
            {"CommandInvocations": []},
            {"CommandInvocations": []},
            {"CommandInvocations": []},
            {"CommandInvocations": [invocation(I1, "InProgress")]},
            {"CommandInvocations": [invocation(I1, "Success")]},
            {"CommandInvocations": [invocation(I1, "Success", rc=0, output=RECAP_OK)]},
        ],
        list_commands=[Again({"Commands": [command(CMD, "InProgress", 1, 0)]})],
    )
    clock = FakeClock()
    options = RolloutOptions.defaults(playbook_url="s3://releases/r42.zip", playbook_file="deploy.yml",
                                      instance_ids=[I1])  # fmt: skip
    result, failure = Rollout(SsmApi(ssm, None, None, "eu-west-1"), options, clock=clock, sleep=clock.sleep).run()
    assert failure is None, failure
    assert result["instances"][0]["outcome"] == "success"


def invocations(*entries):
    return {"CommandInvocations": list(entries)}

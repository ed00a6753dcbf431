"""The steps of ssm_run_playbook's rollout (``_ssm_api``, ``_ssm_follow``, ``_ssm_rollout``),
fed with SSM and EC2 answers as the API gives them (recorded_ssm): botocore's own
paginators over the recorded pages, the follower on a clock that moves only when it sleeps."""

from __future__ import annotations

import pytest
from fake_clock import FakeClock
from recorded_ssm import (
    CMD,
    I1,
    I2,
    I3,
    RECAP_CHANGED,
    RECAP_OK,
    T0,
    Again,
    RecordedClient,
    RecordedSSM,
    command,
    invocation,
    ssm_error,
)

from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as rules
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import SsmApi
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_follow import DONE, LOST, TIMEOUT, Follower
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_options import RolloutOptions, send_call
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_rollout import (
    Rollout,
    changed,
    not_started,
    preflight,
    resolve_targets,
    send,
)
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_watch import HostWatcher

URL = "s3://releases/r42.zip"
C2 = "1a2b3c4d-0000-4000-8000-000000000002"


def online(*ids):
    return {"InstanceInformationList": [{"InstanceId": i, "PingStatus": "Online", "LastPingDateTime": T0} for i in ids]}


def invocations(*entries, token=None):
    page = {"CommandInvocations": list(entries)}
    if token:
        page["NextToken"] = token
    return page


def sent(command_id=CMD):
    return {"Command": {"CommandId": command_id, "RequestedDateTime": T0, "Status": "Pending"}}


def with_id(entry, command_id):
    return dict(entry, CommandId=command_id)


def api(ssm, ec2=None, logs=None):
    return SsmApi(ssm, ec2, logs, "eu-west-1")


def options(**changes):
    return RolloutOptions.defaults(**{"playbook_url": URL, "playbook_file": "deploy.yml", **changes})


def rollout(ssm, clock=None, check_mode=False, watchers=None, ec2=None, **changes):
    """A Rollout on recorded answers; no watcher unless given (the default HostWatcher is
    tested by its own cases, with EC2 answers)."""
    clock = clock or FakeClock()
    watchers = [] if watchers is None else watchers
    return Rollout(api(ssm, ec2), options(**changes), check_mode, clock=clock, sleep=clock.sleep, watchers=watchers)


# --------------------------------------------------------------------------- AWS calls


def test_invocations_are_listed_over_every_page_fifty_at_a_time():
    ssm = RecordedSSM(
        list_command_invocations=[
            invocations(invocation(I1, "Success"), token="t1"),
            invocations(invocation(I2, "InProgress")),
        ]
    )
    listed = api(ssm).list_invocations(CMD, details=True)
    assert [i["InstanceId"] for i in listed] == [I1, I2]
    assert [kwargs.get("NextToken") for _op, kwargs in ssm.calls] == [None, "t1"]
    assert all(kwargs["MaxResults"] == 50 and kwargs["Details"] is True for _op, kwargs in ssm.calls)


def test_instance_information_asks_fifty_ids_a_filter():
    ids = ["i-%017x" % n for n in range(120)]
    ssm = RecordedSSM(describe_instance_information=[online(*ids[:50]), online(*ids[50:100]), online(*ids[100:])])
    found = api(ssm).instance_information(ids)
    assert len(found) == 120
    assert [len(kwargs["Filters"][0]["Values"]) for _op, kwargs in ssm.calls] == [50, 50, 20]


def properties(*ids, token=None):
    page = {"InstanceProperties": [{"InstanceId": i, "PingStatus": "Online", "Name": "web"} for i in ids]}
    if token:
        page["NextToken"] = token
    return page


def test_agents_of_a_large_fleet_are_read_a_thousand_a_page_until_all_are_found():
    """1,200 targets among the region's managed nodes: two DescribeInstanceProperties pages
    (1,000 each), the third never asked for; only the targets come back."""
    ids = ["i-%017x" % n for n in range(1200)]
    others = ["i-%017x" % (9000 + n) for n in range(300)]
    ssm = RecordedSSM(
        describe_instance_properties=[
            properties(*(others + ids[:700]), token="p2"),
            properties(*ids[700:], token="p3"),
        ]
    )
    found = api(ssm).agents(ids)
    assert sorted(a["InstanceId"] for a in found) == ids
    assert [(op, kwargs.get("NextToken"), kwargs["MaxResults"]) for op, kwargs in ssm.calls] == [
        ("describe_instance_properties", None, 1000),
        ("describe_instance_properties", "p2", 1000),
    ]


def test_agents_of_up_to_fifty_are_asked_by_their_ids():
    ssm = RecordedSSM(describe_instance_information=[online(I1, I2)])
    assert [a["InstanceId"] for a in api(ssm).agents([I1, I2])] == [I1, I2]
    assert ssm.operations() == ["describe_instance_information"]


def test_agents_fall_back_to_fifty_a_call_when_the_role_may_not_list_properties():
    """A role without ssm:DescribeInstanceProperties: DescribeInstanceInformation by IDs, and
    the refused call is not tried again by the same api."""
    ids = ["i-%017x" % n for n in range(60)]
    denied = ssm_error("AccessDeniedException", "not authorized to perform: ssm:DescribeInstanceProperties", "X")
    ssm = RecordedSSM(
        describe_instance_properties=[denied],
        describe_instance_information=[online(*ids[:50]), online(*ids[50:]), online(*ids[:50]), online(*ids[50:])],
    )
    connected = api(ssm)
    assert len(connected.agents(ids)) == 60
    assert len(connected.agents(ids)) == 60
    assert ssm.operations() == ["describe_instance_properties"] + ["describe_instance_information"] * 4


def test_agents_say_nothing_of_an_instance_ssm_does_not_manage():
    """The listing ends without one target: it is left out (the pre-flight calls it not managed)."""
    ids = ["i-%017x" % n for n in range(51)]
    ssm = RecordedSSM(describe_instance_properties=[properties(*ids[1:])])
    online_ids, offline = preflight(api(ssm), ids, skip_offline=True)
    assert online_ids == ids[1:]
    assert offline == [{"instance_id": ids[0], "ping_status": None, "reason": "not managed by SSM"}]


def test_the_commands_of_a_batch_are_listed_until_all_are_found():
    ssm = RecordedSSM(
        list_commands=[
            {"Commands": [command(C2, "InProgress", 50, 10)], "NextToken": "p2"},
            {"Commands": [command(CMD, "Success", 50, 50)], "NextToken": "p3"},  # p3 never asked for
        ]
    )
    found = api(ssm).list_commands([CMD, C2], invoked_after="2026-11-21T10:00:00Z")
    assert sorted(c["CommandId"] for c in found) == sorted([CMD, C2])
    assert len(ssm.calls) == 2
    assert ssm.calls[0][1]["Filters"] == [{"key": "InvokedAfter", "value": "2026-11-21T10:00:00Z"}]


def test_a_listing_is_retried_whole_by_the_retry_policy():
    ssm = RecordedSSM(list_command_invocations=[invocations(invocation(I1, "Success"))])
    retried = []

    def retry(function):
        def wrapper():
            retried.append(function.__name__)
            return function()

        return wrapper

    listed = SsmApi(ssm, region="eu-west-1", retry=retry).list_invocations(CMD)
    assert (len(listed), retried) == (1, ["listing"])


# --------------------------------------------------------------------------- targets and pre-flight


def test_tag_targets_resolve_to_running_instances_with_their_names():
    ec2 = RecordedClient(
        "ec2",
        describe_instances=[
            {
                "Reservations": [
                    {
                        "Instances": [
                            {"InstanceId": I1, "State": {"Name": "running"}, "Tags": [{"Key": "Name", "Value": "m"}]}
                        ]
                    }
                ],
                "NextToken": "n",
            },
            {"Reservations": [{"Instances": [{"InstanceId": I2, "State": {"Name": "running"}, "Tags": []}]}]},
        ],
    )
    targets = resolve_targets(api(RecordedSSM(), ec2), targets=["tag:Name=m"])
    assert (targets.instance_ids, targets.names, targets.tag_targets) == ([I1, I2], {I1: "m"}, [("Name", ["m"])])
    assert ec2.calls[0][1]["Filters"][-1] == {"Name": "instance-state-name", "Values": ["running"]}
    assert ec2.calls[1][1]["NextToken"] == "n"


def test_tags_that_match_nothing_say_where_they_looked():
    ec2 = RecordedClient("ec2", describe_instances=[{"Reservations": []}])
    with pytest.raises(rules.SsmRunError, match="no running instance has tag env=prod in eu-west-1"):
        resolve_targets(api(RecordedSSM(), ec2), targets=["tag:env=prod"])


def test_instance_ids_need_no_call():
    ssm = RecordedSSM()
    assert resolve_targets(api(ssm), instance_ids=[I1, I1, I2]).instance_ids == [I1, I2]
    assert ssm.calls == []


def test_preflight_refuses_an_offline_instance_unless_skipped():
    answer = {
        "InstanceInformationList": online(I1)["InstanceInformationList"]
        + [{"InstanceId": I2, "PingStatus": "ConnectionLost"}]
    }
    with pytest.raises(
        rules.SsmRunError, match="1 of 2 target instances cannot receive commands: i-0aaaaaaaaaaaaaaa2"
    ) as refused:
        preflight(api(RecordedSSM(describe_instance_information=[answer])), [I1, I2], skip_offline=False)
    # The result says which, for a report to list them (the failure report does).
    assert refused.value.result == {
        "offline": [
            {
                "instance_id": I2,
                "ping_status": "ConnectionLost",
                "reason": "SSM agent lost its connection (PingStatus ConnectionLost)",
            }
        ]
    }
    up, down = preflight(api(RecordedSSM(describe_instance_information=[answer])), [I1, I2], skip_offline=True)
    assert (up, [d["instance_id"] for d in down]) == ([I1], [I2])


# --------------------------------------------------------------------------- send


def test_a_batch_is_sent_fifty_instance_ids_a_command():
    ids = ["i-%017x" % n for n in range(120)]
    ssm = RecordedSSM(send_command=[sent("a"), sent("b"), sent("c")])
    seen = []
    call = send_call("AWS-ApplyAnsiblePlaybooks", {"Check": ["False"]}, options(comment="r42"))
    sends = send(api(ssm), call, ids, None, on_sent=seen.append)
    assert [len(kwargs["InstanceIds"]) for _op, kwargs in ssm.calls] == [50, 50, 20]
    assert seen == ["a", "b", "c"] == [s["command_id"] for s in sends]
    assert sends[0]["requested"] == "2026-11-21T10:00:00Z"
    assert ssm.calls[0][1]["Comment"] == "r42"
    assert (ssm.calls[0][1]["MaxConcurrency"], ssm.calls[0][1]["MaxErrors"]) == ("50", "0")


def test_a_fleet_by_tag_is_sent_as_tag_targets():
    ssm = RecordedSSM(send_command=[sent()])
    send(api(ssm), {"DocumentName": "AWS-RunShellScript"}, [I1, I2], [("Name", ["m"])])
    assert ssm.calls[0][1]["Targets"] == [{"Key": "tag:Name", "Values": ["m"]}]
    assert "InstanceIds" not in ssm.calls[0][1]


def test_a_cloudwatch_log_group_goes_with_every_command():
    call = send_call("AWS-ApplyAnsiblePlaybooks", {}, options(cloudwatch_log_group="/mlops/ssm", delivery_timeout=600))
    assert call["CloudWatchOutputConfig"] == {"CloudWatchOutputEnabled": True, "CloudWatchLogGroupName": "/mlops/ssm"}
    assert call["TimeoutSeconds"] == 600
    assert call["Comment"] == "mlops.deploy.ssm_run_playbook"


# --------------------------------------------------------------------------- follow


def test_the_follower_polls_one_page_until_every_instance_is_over():
    ssm = RecordedSSM(
        list_command_invocations=[
            invocations(invocation(I1, "Pending"), invocation(I2, "Pending")),
            invocations(invocation(I1, "InProgress"), invocation(I2, "Success")),
            invocations(invocation(I1, "Success"), invocation(I2, "Success")),
        ]
    )
    clock, lines = FakeClock(), []
    follower = Follower(api(ssm), clock, clock.sleep, lines.append)
    assert follower.follow([{"command_id": CMD}], [I1, I2], deadline=60, label=(1, 1)) == DONE
    assert follower.polls == 3
    assert [line.split(" \u2014 ")[0] for line in lines] == [
        "batch 1/1 (2 instances): 2 Pending",
        "batch 1/1 (2 instances): 1 Success, 1 InProgress",
        "batch 1/1 (2 instances): 2 Success",
    ]


def test_a_command_ssm_does_not_know_yet_is_waited_for_then_is_an_error():
    unknown = ssm_error("InvalidCommandId", "", "ListCommandInvocations")
    ssm = RecordedSSM(list_command_invocations=[unknown, invocations(invocation(I1, "Success"))])
    clock = FakeClock()
    assert Follower(api(ssm), clock, clock.sleep).follow([{"command_id": CMD}], [I1], 60) == DONE
    ssm = RecordedSSM(list_command_invocations=[Again(unknown)])
    with pytest.raises(type(unknown)):
        Follower(api(ssm), clock, clock.sleep).follow([{"command_id": CMD}], [I1], clock() + 60)


def test_other_errors_are_not_waited_for():
    throttled = ssm_error("AccessDeniedException", "no", "ListCommandInvocations")
    clock = FakeClock()
    with pytest.raises(type(throttled)):
        Follower(api(RecordedSSM(list_command_invocations=[throttled])), clock, clock.sleep).follow(
            [{"command_id": CMD}], [I1], 60
        )
    assert clock.now < 1


def test_the_follower_stops_at_the_deadline():
    ssm = RecordedSSM(list_command_invocations=[Again(invocations(invocation(I1, "InProgress")))])
    clock = FakeClock()
    assert Follower(api(ssm), clock, clock.sleep).follow([{"command_id": CMD}], [I1], deadline=20) == TIMEOUT
    assert 20 <= clock.now <= 25


def test_a_watcher_sees_each_poll_and_can_give_up_on_running_instances():
    ssm = RecordedSSM(
        list_command_invocations=[
            invocations(invocation(I1, "InProgress"), invocation(I2, "InProgress")),
            Again(invocations(invocation(I1, "Success"), invocation(I2, "InProgress"))),
        ],
        cancel_command=[{}],
    )
    seen = []

    def watcher(poll):
        seen.append((poll.number, poll.running))
        return {I2: "SSM agent ConnectionLost"} if poll.number >= 2 else {}

    clock = FakeClock()
    follower = Follower(api(ssm), clock, clock.sleep, watchers=[watcher])
    assert follower.follow([{"command_id": CMD}], [I1, I2], deadline=600) == LOST
    assert seen == [(1, [I1, I2]), (2, [I2])]
    assert follower.lost == {I2: "SSM agent ConnectionLost"}
    assert ("cancel_command", {"CommandId": CMD, "InstanceIds": [I2]}) in ssm.calls  # its invocation only


def test_a_fleet_of_several_commands_is_followed_by_their_counters():
    done = [invocation(I1, "Success", rc=0, output=RECAP_OK)]
    ssm = RecordedSSM(
        list_commands=[
            {"Commands": [command(CMD, "InProgress", 50, 20), command(C2, "Success", 10, 10)]},
            {"Commands": [command(CMD, "Success", 50, 50), command(C2, "Success", 10, 10)]},
        ],
        list_command_invocations=[invocations(*done), invocations(*done)],
    )
    clock, lines = FakeClock(), []
    follower = Follower(api(ssm), clock, clock.sleep, lines.append)
    sends = [{"command_id": CMD, "requested": "2026-11-21T10:00:00Z"}, {"command_id": C2, "requested": None}]
    assert follower.follow(sends, ["i-%017x" % n for n in range(60)], deadline=600, label=(1, 1)) == DONE
    assert sorted(follower.finished) == sorted([CMD, C2])  # each listed once, when it ended
    assert ssm.operations().count("list_command_invocations") == 2
    assert "30 completed" in lines[0]


def big_command_answers(ids, running, early_listed=None):
    """A 300-instance tag command: its counters say 20 left (the early read), then over."""
    early_listed = ids if early_listed is None else early_listed
    pages = [
        invocations(
            *[invocation(i, "InProgress" if i in running else "Success") for i in early_listed[n : n + 50]],
            token="p%d" % (n + 50) if n + 50 < len(early_listed) else None,
        )
        for n in range(0, len(early_listed), 50)
    ]
    return RecordedSSM(
        list_commands=[
            {"Commands": [command(CMD, "InProgress", 300, 280)]},
            {"Commands": [command(CMD, "Success", 300, 300)]},
        ],
        list_command_invocations=pages,
    )


def test_a_big_command_is_read_near_its_end_and_only_its_last_running_ones_after():
    """Six pages read once 20 are left; at its end, one call for each of the 20 still
    running then (side by side), not the six pages again."""
    ids = ["i-%017x" % n for n in range(300)]
    running = ids[100:120]
    ssm = big_command_answers(ids, running)
    ssm.answers["list_command_invocations"] += [
        invocations(invocation(i, "Success", rc=0, output=RECAP_OK, end=9)) for i in sorted(running)
    ]
    clock = FakeClock()
    follower = Follower(api(ssm), clock, clock.sleep)
    assert follower.follow([{"command_id": CMD}], ids, deadline=600) == DONE
    listed = follower.finished[CMD]
    assert sorted(i["InstanceId"] for i in listed) == ids
    assert {i["InstanceId"] for i in listed if i["Status"] != "Success"} == set()
    one_by_one = [kwargs for op, kwargs in ssm.calls if op == "list_command_invocations" and "InstanceId" in kwargs]
    assert sorted(kwargs["InstanceId"] for kwargs in one_by_one) == sorted(running)
    assert all(kwargs["Details"] is True for kwargs in one_by_one)
    assert ssm.operations().count("list_command_invocations") == 6 + 20


def test_the_wait_between_polls_runs_from_the_start_of_the_last_one():
    """The early read took 0.6 s, longer than the 0.25 s the schedule asks between polls:
    the next poll comes at once, not 0.25 s after the read."""
    ids = ["i-%017x" % n for n in range(300)]
    running = ids[100:120]
    ssm = big_command_answers(ids, running)
    ssm.answers["list_command_invocations"] += [
        invocations(invocation(i, "Success", rc=0, output=RECAP_OK, end=9)) for i in sorted(running)
    ]
    clock, the_api = FakeClock(), api(ssm)
    every_page = the_api.list_invocations

    def slow_pages(*args, **kwargs):
        clock.now += 0.6
        return every_page(*args, **kwargs)

    the_api.list_invocations = slow_pages
    follower = Follower(the_api, clock, clock.sleep)
    assert follower.follow([{"command_id": CMD}], ids, deadline=600) == DONE
    assert clock.sleeps == [0.25, 0.0]
    assert follower.polls == 2


def test_an_early_read_missing_invocations_is_not_trusted_and_every_page_is_read_at_the_end():
    """SSM listed 250 of the 300 invocations when it was read early (still creating them):
    at the end every page is read again, rather than 50 instances reported as not run."""
    ids = ["i-%017x" % n for n in range(300)]
    ssm = big_command_answers(ids, running=set(), early_listed=ids[:250])
    ssm.answers["list_command_invocations"] += [
        invocations(*[invocation(i, "Success") for i in ids[n : n + 50]], token="q%d" % n if n < 250 else None)
        for n in range(0, 300, 50)
    ]
    clock = FakeClock()
    follower = Follower(api(ssm), clock, clock.sleep)
    assert follower.follow([{"command_id": CMD}], ids, deadline=600) == DONE
    assert sorted(i["InstanceId"] for i in follower.finished[CMD]) == ids
    assert ssm.operations().count("list_command_invocations") == 5 + 6


# --------------------------------------------------------------------------- the whole rollout


def test_a_canary_then_the_rest_each_followed_to_success():
    ssm = RecordedSSM(
        describe_instance_information=[online(I1, I2, I3)],
        send_command=[sent(CMD), sent(C2)],
        list_command_invocations=[
            invocations(invocation(I1, "Success")),
            invocations(invocation(I1, "Success", rc=0, output=RECAP_OK, end=2)),
            invocations(with_id(invocation(I2, "Success"), C2), with_id(invocation(I3, "Success"), C2)),
            invocations(
                with_id(invocation(I2, "Success", rc=0, output=RECAP_CHANGED, end=3), C2),
                with_id(invocation(I3, "Success", rc=0, output=RECAP_OK, end=3), C2),
            ),
        ],
    )
    result, failure = rollout(ssm, instance_ids=[I1, I2, I3], batches=[1, "100%"]).run()
    assert failure is None
    assert result["msg"] == "AWS-ApplyAnsiblePlaybooks succeeded on 3 instances in 2 batches"
    assert [b["status"] for b in result["batches"]] == ["success", "success"]
    assert result["command_ids"] == [CMD, C2]
    assert [(i["instance_id"], i["batch"], i["changed"]) for i in result["instances"]] == [
        (I1, 1, False),
        (I2, 2, True),
        (I3, 2, False),
    ]
    assert result["changed"] is True  # I2's recap says changed=2
    assert result["summary"] == {"total": 3, "success": 3}
    assert [kwargs["InstanceIds"] for op, kwargs in ssm.calls if op == "send_command"] == [[I1], [I2, I3]]


def test_a_failed_canary_stops_the_rollout_with_its_output():
    failed = invocation(I1, "Failed", rc=2, output="TASK [Pull] ***\nfatal: [localhost]: FAILED! => manifest unknown")
    ssm = RecordedSSM(
        describe_instance_information=[online(I1, I2)],
        send_command=[sent()],
        list_command_invocations=[invocations(invocation(I1, "Failed")), invocations(failed)],
    )
    r = rollout(ssm, instance_ids=[I1, I2], batches=[1, "100%"])
    result, failure = r.run()
    assert failure.startswith("1 instance failed in batch 1/2:\n  %s Failed (rc=2):" % I1)
    assert "The rollout stopped: 1 instance in later batches never received the command." in failure
    assert [b["status"] for b in result["batches"]] == ["failed", "not_started"]
    assert [i["outcome"] for i in result["instances"]] == ["failed", "not_started"]
    assert ssm.operations().count("send_command") == 1
    assert r.partial() == {"changed": True, "command_ids": [CMD]}


def test_a_batch_past_the_timeout_is_cancelled_and_says_where_each_instance_was():
    running = invocations(invocation(I1, "InProgress"))
    ssm = RecordedSSM(
        describe_instance_information=[online(I1)],
        send_command=[sent()],
        list_command_invocations=[
            running,
            running,
            running,
            running,
            running,
            Again(invocations(invocation(I1, "Cancelled"))),
        ],
        cancel_command=[{}],
    )
    result, failure = rollout(ssm, instance_ids=[I1], timeout=2).run()
    assert failure.startswith("timed out after 2s (timeout) waiting for batch 1/1; the command was cancelled.")
    assert "Where each unfinished instance had got to: %s InProgress" % I1 in failure
    assert result["timed_out"] is True
    assert result["batches"][0]["status"] == "timed_out"
    assert result["instances"][0]["status_at_timeout"] == "InProgress"
    assert ("cancel_command", {"CommandId": CMD}) in ssm.calls


def test_a_lost_instance_fails_its_batch_naming_it_the_others_run_to_their_end():
    ssm = RecordedSSM(
        describe_instance_information=[online(I1, I2)],
        send_command=[sent()],
        list_command_invocations=[
            invocations(invocation(I1, "InProgress"), invocation(I2, "InProgress")),  # I2 given up on
            invocations(invocation(I1, "InProgress"), invocation(I2, "Cancelling")),  # I1 still works
            invocations(invocation(I1, "Success"), invocation(I2, "Cancelling")),
            # Details=true, once the batch is over: the dead agent never acknowledged the cancel.
            invocations(invocation(I1, "Success", rc=0, output=RECAP_OK), invocation(I2, "Cancelling")),
        ],
        cancel_command=[{}],
    )
    lost = {I2: "lost its SSM agent (ConnectionLost since 2026-11-21T10:00:00Z)"}
    result, failure = rollout(
        ssm, instance_ids=[I1, I2], watchers=[lambda poll: lost if poll.number == 1 else {}]
    ).run()
    assert failure.startswith(
        "1 instance failed in batch 1/1:\n  %s lost its SSM agent (ConnectionLost since 2026-11-21T10:00:00Z); "
        "its invocation was cancelled" % I2
    )
    assert [(s["instance_id"], s["outcome"]) for s in result["instances"]] == [(I1, "success"), (I2, "lost")]
    assert result["instances"][1]["lost_reason"] == lost[I2]
    assert result["timed_out"] is False
    assert result["batches"][0]["status"] == "failed"
    assert [c for c in ssm.calls if c[0] == "cancel_command"] == [
        ("cancel_command", {"CommandId": CMD, "InstanceIds": [I2]})
    ]


def test_a_canary_lost_stops_the_rollout_before_the_next_batch():
    ssm = RecordedSSM(
        describe_instance_information=[online(I1, I2, I3)],
        send_command=[sent()],
        list_command_invocations=[
            invocations(invocation(I1, "InProgress")),
            invocations(invocation(I1, "Cancelling")),
        ],
        cancel_command=[{}],
    )
    result, failure = rollout(
        ssm,
        instance_ids=[I1, I2, I3],
        batches=[1, "100%"],
        watchers=[lambda poll: dict.fromkeys(poll.running or [], "stopped running (EC2 state stopped)")],
    ).run()
    assert failure.startswith("1 instance failed in batch 1/2:\n  %s stopped running (EC2 state stopped)" % I1)
    assert "2 instances in later batches never received the command" in failure
    assert ssm.operations().count("send_command") == 1
    assert result["summary"]["lost"] == 1


def test_check_mode_of_a_document_without_a_dry_run_sends_nothing():
    ssm = RecordedSSM(describe_instance_information=[online(I1, I2)])
    result, failure = rollout(
        ssm,
        check_mode=True,
        document_name="AWS-RunShellScript",
        playbook_url=None,
        playbook_file=None,
        parameters={"commands": ["true"]},
        instance_ids=[I1, I2],
    ).run()
    assert failure is None
    assert result["msg"] == "check mode: AWS-RunShellScript would run on 2 instances in 1 batch; nothing was sent"
    assert ssm.operations() == ["describe_instance_information"]


def test_options_are_checked_before_any_call():
    ssm = RecordedSSM()
    with pytest.raises(rules.SsmRunError, match="poll_max_interval must be 0.25 seconds or more"):
        rollout(ssm, instance_ids=[I1], poll_max_interval=0.1).run()
    assert ssm.calls == []
    with pytest.raises(rules.SsmRunError, match="host_check_interval must be 5 seconds or more, not 1.0"):
        rollout(ssm, instance_ids=[I1], host_check_interval=1.0).run()
    assert ssm.calls == []


def test_the_host_check_interval_reaches_the_default_watcher():
    for changes, interval in (({"host_check_interval": 15.0}, 15.0), ({}, 60.0)):
        (watcher,) = Rollout(api(RecordedSSM()), options(instance_ids=[I1], **changes)).follower.watchers
        assert (type(watcher), watcher.interval) == (HostWatcher, interval)


# --------------------------------------------------------------------------- results


def test_batches_not_started_are_recorded_with_their_instances():
    entries, states = not_started([[I1], [I2], [I3]], 2, {I2: "b"})
    assert [e["batch"] for e in entries] == [2, 3]
    assert [(s["instance_id"], s["instance_name"], s["outcome"]) for s in states] == [
        (I2, "b", "not_started"),
        (I3, None, "not_started"),
    ]


@pytest.mark.parametrize(
    ("recaps", "ansible", "expected"),
    [
        ([False, False], True, False),
        ([False, True], True, True),
        ([False, None], True, True),  # a recap not read counts as changed
        ([False, False], False, True),  # another document: it ran
    ],
)
def test_changed_comes_from_the_recaps(recaps, ansible, expected):
    states = [{"command_id": CMD, "response_code": 0, "changed": c} for c in recaps]
    states.append({"command_id": None, "response_code": None, "changed": True})  # never sent
    assert changed(states, ansible) is expected

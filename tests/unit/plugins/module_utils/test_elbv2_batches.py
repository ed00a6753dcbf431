"""Batches leaving and rejoining their ALB target groups (``_elbv2_batches``, and the
rollout that uses it), on recorded elbv2 and SSM answers; time moves only when the code
sleeps."""

from __future__ import annotations

import pytest
from fake_clock import FakeClock
from recorded_elbv2 import (
    TG_ARN,
    TG_NAME,
    RecordedElbv2,
    attributes,
    draining,
    gone,
    health,
    healthy,
    initial,
    not_in_use,
    target_groups,
    unhealthy,
)
from recorded_ssm import CMD, I1, I2, I3, RECAP_OK, T0, RecordedSSM, invocation

from ansible_collections.mlops.deploy.plugins.module_utils import _elbv2_batches as elbv2
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import SsmApi
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_options import RolloutOptions
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_rollout import Rollout
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_run import SsmRunError

C2 = "1a2b3c4d-0000-4000-8000-000000000002"
URL = "s3://releases/r42.zip"


# ------------------------------------------------------------------ plain functions


def test_a_target_group_waits_its_deregistration_delay_and_a_margin_by_default():
    group = elbv2.resolve(
        {"target_group": TG_NAME}, target_groups()["TargetGroups"][0], attributes("120")["Attributes"]
    )
    assert (group.arn, group.name, group.port, group.label) == (TG_ARN, TG_NAME, 8080, "tg/model-api")
    assert group.deregistration_delay == 120
    assert group.drain_timeout == 120 + elbv2.DRAIN_MARGIN
    assert group.healthy_timeout == elbv2.HEALTHY_TIMEOUT


def test_the_options_override_the_port_and_the_bounds():
    entry = {"target_group": TG_ARN, "port": 9000, "drain_timeout": 0, "healthy_timeout": 60}
    group = elbv2.resolve(entry, target_groups()["TargetGroups"][0], attributes()["Attributes"])
    assert (group.port, group.drain_timeout, group.healthy_timeout) == (9000, 0, 60)
    assert group.targets([I1]) == [{"Id": I1, "Port": 9000}]


def test_a_target_group_of_ip_addresses_is_refused():
    with pytest.raises(SsmRunError, match="target type ip; only target groups of instances"):
        elbv2.resolve({"target_group": TG_NAME}, target_groups("ip")["TargetGroups"][0], [])


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"target_group": " "}], "each entry needs target_group"),
        ([{"target_group": TG_NAME, "port": 0}], "port 0 of model-api must be 1 to 65535"),
        ([{"target_group": TG_NAME, "drain_timeout": -1}], "drain_timeout of model-api must be 0 or more, not -1"),
        ([{"target_group": TG_NAME, "healthy_timeout": 0}], "healthy_timeout of model-api must be 1 or more"),
        ([{"target_group": TG_NAME}, {"target_group": TG_NAME}], "model-api is given twice"),
    ],
)
def test_bad_target_group_options_say_what_to_fix(entries, message):
    with pytest.raises(SsmRunError, match=message):
        elbv2.check_options(entries)


def test_a_name_and_an_arn_are_looked_up_differently():
    assert elbv2.group_query(TG_NAME) == {"Names": [TG_NAME]}
    assert elbv2.group_query(TG_ARN) == {"TargetGroupArns": [TG_ARN]}


def test_what_is_registered_draining_gone_or_healthy():
    listed = health(healthy(I1), draining(I2), healthy(I3, port=9000))["TargetHealthDescriptions"]
    # I3 is registered on another port: not this endpoint's.
    assert elbv2.registered(listed, 8080, [I1, I2, I3]) == [I1, I2]
    after = health(gone(I1), draining(I2))["TargetHealthDescriptions"]
    assert list(elbv2.still_there(after, 8080, [I1, I2])) == [I2]
    joined = health(healthy(I1), initial(I2))["TargetHealthDescriptions"]
    waiting = elbv2.not_healthy(joined, 8080, [I1, I2, I3])
    assert sorted(waiting) == [I2, I3]
    assert waiting[I3]["description"] == "not in DescribeTargetHealth's answer"
    assert elbv2.hopeless(waiting) == {}


def test_a_target_group_no_load_balancer_uses_is_not_waited_for():
    waiting = elbv2.not_healthy(health(not_in_use(I1))["TargetHealthDescriptions"], 8080, [I1])
    assert list(elbv2.hopeless(waiting)) == [I1]
    assert elbv2.describe_state(waiting[I1]) == (
        "unused (Target.NotInUse: Target group is not configured to receive traffic from the load balancer)"
    )


# --------------------------------------------------------------- the calls, one batch


def traffic(elb, clock, lines, **entry):
    api = elbv2.Elbv2Api(elb)
    return elbv2.BatchTraffic.resolve(
        api, [{"target_group": TG_NAME, **entry}], clock=clock, sleep=clock.sleep, report=lines.append
    )


def test_a_batch_leaves_waits_for_draining_and_rejoins_until_healthy():
    clock, lines = FakeClock(), []
    elb = RecordedElbv2(
        describe_target_groups=[target_groups()],
        describe_target_group_attributes=[attributes("30")],
        describe_target_health=[
            health(healthy(I1), healthy(I2), healthy(I3)),  # what is registered
            health(draining(I1), draining(I2)),
            health(gone(I1), draining(I2)),
            health(gone(I1), gone(I2)),
            health(initial(I1), initial(I2)),
            health(healthy(I1), healthy(I2)),
        ],
        deregister_targets=[{}],
        register_targets=[{}],
    )
    batch = traffic(elb, clock, lines)
    steps, failure = batch.take_out([I1, I2], "batch 2/3")
    assert failure is None
    assert steps[0].taken_out == [I1, I2]
    assert elb.calls[2] == ("describe_target_health", {"TargetGroupArn": TG_ARN})
    assert elb.calls[3] == (
        "deregister_targets",
        {"TargetGroupArn": TG_ARN, "Targets": [{"Id": I1, "Port": 8080}, {"Id": I2, "Port": 8080}]},
    )
    unhealthy_ones, failure = batch.put_back([I1, I2], "batch 2/3", steps)
    assert (unhealthy_ones, failure) == ({}, None)
    assert elb.operations() == [
        "describe_target_groups",
        "describe_target_group_attributes",
        "describe_target_health",
        "deregister_targets",
        "describe_target_health",
        "describe_target_health",
        "describe_target_health",
        "register_targets",
        "describe_target_health",
        "describe_target_health",
    ]
    assert lines == [
        "batch 2/3: %s, %s out of tg/model-api (draining)" % (I1, I2),
        "batch 2/3: %s, %s out of tg/model-api (drained in 1.5s)" % (I1, I2),
        "batch 2/3: %s, %s back in tg/model-api (healthy in 0.5s)" % (I1, I2),
    ]
    # Backing off: 0.5 s, then 1 s between polls.
    assert clock.sleeps == [0.5, 1.0, 0.5]


def test_an_instance_not_registered_yet_is_not_deregistered_but_joins_after_its_deploy():
    clock, lines = FakeClock(), []
    elb = RecordedElbv2(
        describe_target_groups=[target_groups()],
        describe_target_group_attributes=[attributes()],
        describe_target_health=[health(healthy(I2)), health(healthy(I1))],
        register_targets=[{}],
    )
    batch = traffic(elb, clock, lines)
    steps, failure = batch.take_out([I1], "batch 1/2")
    assert failure is None
    assert steps[0].taken_out == []
    assert "deregister_targets" not in elb.operations()
    assert batch.put_back([I1], "batch 1/2", steps) == ({}, None)
    assert ("register_targets", {"TargetGroupArn": TG_ARN, "Targets": [{"Id": I1, "Port": 8080}]}) in elb.calls


def test_draining_past_its_bound_fails_naming_the_instance_and_its_state():
    clock, lines = FakeClock(), []
    elb = RecordedElbv2(
        describe_target_groups=[target_groups()],
        describe_target_group_attributes=[attributes("0")],
        describe_target_health=[health(healthy(I1))] + [health(draining(I1))] * 20,
        deregister_targets=[{}],
        register_targets=[{}],
    )
    batch = traffic(elb, clock, lines, drain_timeout=10)
    steps, failure = batch.take_out([I1], "batch 1/1")
    assert failure == (
        "batch 1/1: %s still in tg/model-api after 10s (drain_timeout): "
        "%s draining (Target.DeregistrationInProgress: Target deregistration is in progress)" % (I1, I1)
    )
    assert clock.now == 10
    batch.restore(steps)
    assert elb.calls[-1] == ("register_targets", {"TargetGroupArn": TG_ARN, "Targets": [{"Id": I1, "Port": 8080}]})


def test_an_instance_not_healthy_in_time_is_taken_out_again_with_its_reason():
    clock, lines = FakeClock(), []
    elb = RecordedElbv2(
        describe_target_groups=[target_groups()],
        describe_target_group_attributes=[attributes()],
        describe_target_health=[health()] + [health(healthy(I1), unhealthy(I2))] * 30,
        register_targets=[{}],
        deregister_targets=[{}],
    )
    batch = traffic(elb, clock, lines, healthy_timeout=20)
    steps, _failure = batch.take_out([I1, I2], "batch 1/1")
    failed, failure = batch.put_back([I1, I2], "batch 1/1", steps)
    assert list(failed) == [I2]
    assert failure.startswith("batch 1/1: %s not healthy in tg/model-api after 20" % I2)
    assert "unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [503])" in failure
    assert failure.endswith("they were taken out again and stay out of service")
    assert elb.calls[-1] == ("deregister_targets", {"TargetGroupArn": TG_ARN, "Targets": [{"Id": I2, "Port": 8080}]})
    assert steps[0].left_out == [I2]


def test_an_unknown_target_group_is_a_message_not_a_traceback():
    from botocore.exceptions import ClientError

    missing = ClientError(
        {"Error": {"Code": "TargetGroupNotFound", "Message": "One or more target groups not found"}},
        "DescribeTargetGroups",
    )
    elb = RecordedElbv2(describe_target_groups=[missing])
    with pytest.raises(SsmRunError, match="target group nope was not found \\(TargetGroupNotFound\\); check its name"):
        elbv2.Elbv2Api(elb).target_group("nope")


# --------------------------------------------------------------------- in the rollout


def online(*ids):
    return {"InstanceInformationList": [{"InstanceId": i, "PingStatus": "Online", "LastPingDateTime": T0} for i in ids]}


def sent(command_id):
    return {"Command": {"CommandId": command_id, "RequestedDateTime": T0, "Status": "Pending"}}


def done(command_id, *ids, status="Success", rc=0):
    return {
        "CommandInvocations": [
            dict(invocation(i, status, rc=rc, output=RECAP_OK, end=2), CommandId=command_id) for i in ids
        ]
    }


class Together:
    """Both recorded clients write to one call list, so their order can be asserted."""

    def __init__(self, ssm, elb):
        elb.calls = ssm.calls
        self.ssm, self.elb = ssm, elb

    def operations(self):
        return [op for op, _kwargs in self.ssm.calls if op not in ("describe_instance_information",)]


def run(ssm, elb, check_mode=False, lines=None, **changes):
    clock = FakeClock()
    options = RolloutOptions.defaults(
        **{
            "playbook_url": URL,
            "playbook_file": "deploy.yml",
            "target_groups": [{"target_group": TG_NAME, "port": 8080, "drain_timeout": 60}],
            **changes,
        }
    )
    api = SsmApi(ssm, None, None, "eu-west-1", elbv2=elb)
    report = (lines if lines is not None else []).append
    return Rollout(api, options, check_mode, report=report, clock=clock, sleep=clock.sleep, watchers=[]).run()


def test_each_batch_leaves_before_it_is_sent_and_rejoins_before_the_next():
    ssm = RecordedSSM(
        describe_instance_information=[online(I1, I2, I3)],
        send_command=[sent(CMD), sent(C2)],
        list_command_invocations=[done(CMD, I1), done(CMD, I1), done(C2, I2, I3), done(C2, I2, I3)],
    )
    elb = RecordedElbv2(
        describe_target_groups=[target_groups()],
        describe_target_group_attributes=[attributes()],
        describe_target_health=[
            health(healthy(I1), healthy(I2), healthy(I3)),
            health(gone(I1)),
            health(healthy(I1)),
            health(healthy(I1), healthy(I2), healthy(I3)),
            health(gone(I2), gone(I3)),
            health(healthy(I2), healthy(I3)),
        ],
        deregister_targets=[{}, {}],
        register_targets=[{}, {}],
    )
    both = Together(ssm, elb)
    result, failure = run(ssm, elb, instance_ids=[I1, I2, I3], batches=[1, "100%"])
    assert failure is None
    order = [op for op in both.operations() if op in ("deregister_targets", "send_command", "register_targets")]
    assert order == ["deregister_targets", "send_command", "register_targets"] * 2
    targets = [kw["Targets"] for op, kw in ssm.calls if op in ("deregister_targets", "register_targets")]
    assert [[t["Id"] for t in ts] for ts in targets] == [[I1], [I1], [I2, I3], [I2, I3]]
    steps = [b["target_groups"][0] for b in result["batches"]]
    assert [(s["taken_out"], s["put_back"], s["left_out"]) for s in steps] == [
        ([I1], [I1], []),
        ([I2, I3], [I2, I3], []),
    ]
    assert result["summary"] == {"total": 3, "success": 3}


def test_a_failed_batch_stays_out_of_the_target_group():
    ssm = RecordedSSM(
        describe_instance_information=[online(I1, I2)],
        send_command=[sent(CMD)],
        list_command_invocations=[done(CMD, I1, status="Failed", rc=2), done(CMD, I1, status="Failed", rc=2)],
    )
    elb = RecordedElbv2(
        describe_target_groups=[target_groups()],
        describe_target_group_attributes=[attributes()],
        describe_target_health=[health(healthy(I1), healthy(I2)), health(gone(I1))],
        deregister_targets=[{}],
    )
    result, failure = run(ssm, elb, instance_ids=[I1, I2], batches=[1, "100%"])
    assert failure.startswith("1 instance failed in batch 1/2")
    assert failure.endswith("; the batch's instances stay out of tg/model-api")
    assert "register_targets" not in elb.operations()
    assert result["batches"][0]["target_groups"][0]["left_out"] == [I1]
    assert [b["status"] for b in result["batches"]] == ["failed", "not_started"]


def test_a_deployed_instance_that_is_not_healthy_fails_its_batch():
    ssm = RecordedSSM(
        describe_instance_information=[online(I1, I2)],
        send_command=[sent(CMD)],
        list_command_invocations=[done(CMD, I1), done(CMD, I1)],
    )
    elb = RecordedElbv2(
        describe_target_groups=[target_groups()],
        describe_target_group_attributes=[attributes()],
        describe_target_health=[health(healthy(I1), healthy(I2)), health(gone(I1))] + [health(unhealthy(I1))] * 10,
        deregister_targets=[{}, {}],
        register_targets=[{}],
    )
    lines = []
    result, failure = run(
        ssm,
        elb,
        lines=lines,
        instance_ids=[I1, I2],
        batches=[1, "100%"],
        target_groups=[{"target_group": TG_NAME, "healthy_timeout": 5}],
    )
    assert failure.startswith("batch 1/2: %s not healthy in tg/model-api after 5" % I1)
    assert failure.endswith("; 1 instances in later batches were never sent")
    assert [i["outcome"] for i in result["instances"]] == ["unhealthy_in_target_group", "not_started"]
    assert "Target.ResponseCodeMismatch" in result["instances"][0]["reason"]
    assert result["batches"][0]["status"] == "failed"
    assert elb.operations()[-1] == "deregister_targets"


def test_a_batch_that_does_not_drain_is_not_sent_and_is_registered_again():
    ssm = RecordedSSM(describe_instance_information=[online(I1, I2)])
    elb = RecordedElbv2(
        describe_target_groups=[target_groups()],
        describe_target_group_attributes=[attributes()],
        describe_target_health=[health(healthy(I1), healthy(I2))] + [health(draining(I1))] * 20,
        deregister_targets=[{}],
        register_targets=[{}],
    )
    result, failure = run(ssm, elb, instance_ids=[I1, I2], batches=[1, "100%"])
    assert failure.startswith("batch 1/2: %s still in tg/model-api after 60s (drain_timeout)" % I1)
    assert "nothing was sent to the batch, its instances were registered again" in failure
    assert "send_command" not in ssm.operations()
    assert [i["outcome"] for i in result["instances"]] == ["drain_timed_out", "not_started"]
    assert [b["status"] for b in result["batches"]] == ["failed", "not_started"]
    assert elb.operations()[-1] == "register_targets"


def test_check_mode_makes_no_elbv2_call_and_says_what_would_happen():
    ssm = RecordedSSM(
        describe_instance_information=[online(I1)],
        send_command=[sent(CMD)],
        list_command_invocations=[done(CMD, I1), done(CMD, I1)],
    )
    elb = RecordedElbv2()  # any call fails the test
    lines = []
    result, failure = run(ssm, elb, check_mode=True, lines=lines, instance_ids=[I1])
    assert failure is None
    assert elb.calls == []
    assert result["batches"][0]["target_groups"] == [
        {"target_group": TG_NAME, "port": 8080, "would_take_out": [I1], "would_put_back": [I1]}
    ]
    assert lines[0] == (
        "batch 1/1: check mode: %s would leave model-api (draining) before the deploy and rejoin it after" % I1
    )


def test_check_mode_of_another_document_plans_the_target_groups_too():
    ssm = RecordedSSM(describe_instance_information=[online(I1, I2)])
    result, failure = run(
        ssm,
        RecordedElbv2(),
        check_mode=True,
        instance_ids=[I1, I2],
        batches=[1],
        document_name="AWS-RunShellScript",
        parameters={"commands": ["true"]},
        playbook_url=None,
        playbook_file=None,
    )
    assert failure is None
    assert [b["target_groups"][0]["would_take_out"] for b in result["batches"]] == [[I1], [I2]]

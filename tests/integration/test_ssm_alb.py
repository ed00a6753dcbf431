"""ssm_run_playbook's target_groups against the sandbox: moto's elbv2 (a VPC, an ALB, a target
group with a listener) and simulated instances (the SSM service plays their agent), through
real ansible-playbook runs.

What is proved here: each batch's instances are deregistered before its command is sent and
registered again after it ended, batch after batch (the sandbox's call log, with its times);
an instance is out of the target group only during its own batch (DescribeTargetHealth polled
from the side during the run); check mode makes no elbv2 call; a failed batch stays out; bad
settings change nothing. What moto cannot show: its target health probes nothing (a registered
running instance is ``healthy`` at once) and draining is immediate.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from mlops_sandbox.client import Sandbox

from .conftest import assert_play_ok

PORT = 8080
ELB = "elasticloadbalancing"


@pytest.fixture(scope="module")
def run_id():
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def sandbox(aws_env):
    return Sandbox(aws_env["MLOPS_SANDBOX_CONTROL_URL"], account=aws_env["MLOPS_SANDBOX_ACCOUNT_ID"])


@pytest.fixture(scope="module")
def target_group(aws, run_id):
    """A VPC with two subnets, an ALB and a target group of instances forwarded to by its listener."""
    ec2, elb = aws("ec2"), aws("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.250.{n}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for n, zone in enumerate(zones)
    ]
    name = f"alb-{run_id}"
    balancer = elb.create_load_balancer(Name=name, Subnets=subnets, Type="application")["LoadBalancers"][0]
    group = elb.create_target_group(
        Name=name, Protocol="HTTP", Port=PORT, VpcId=vpc, TargetType="instance", HealthCheckPath="/health"
    )["TargetGroups"][0]
    elb.create_listener(
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}],
    )
    elb.modify_target_group_attributes(
        TargetGroupArn=group["TargetGroupArn"],
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}],
    )
    yield {"name": name, "arn": group["TargetGroupArn"]}
    elb.delete_load_balancer(LoadBalancerArn=balancer["LoadBalancerArn"])
    elb.delete_target_group(TargetGroupArn=group["TargetGroupArn"])


@pytest.fixture
def simulated(sandbox, run_id):
    """Simulated instances, by count: simulated(3, ...) -> ids; removed afterwards."""
    made = []

    def make(count, **options):
        name = f"alb-sim-{run_id}-{len(made)}"
        made.append(name)
        return [i["instance_id"] for i in sandbox.add_instances("simulated", count, name, "test", seed=3, **options)]

    yield make
    for name in made:
        sandbox.remove_instances(name=name, env="test")


def register(aws, arn, ids):
    aws("elbv2").register_targets(TargetGroupArn=arn, Targets=[{"Id": i, "Port": PORT} for i in ids])


def in_service(aws, arn, ids):
    """Which of ``ids`` the target group holds (DescribeTargetHealth, any state but NotRegistered)."""
    found = aws("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    held = {d["Target"]["Id"] for d in found if d["TargetHealth"].get("Reason") != "Target.NotRegistered"}
    return [i for i in ids if i in held]


class Watch:
    """DescribeTargetHealth every 0.1 s from a thread: ``(asked, answered, instances out)``."""

    def __init__(self, aws, arn, ids):
        self.client, self.arn, self.ids = aws("elbv2"), arn, ids
        self.samples: list[tuple[float, float, frozenset]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            asked = time.time()
            found = self.client.describe_target_health(TargetGroupArn=self.arn)["TargetHealthDescriptions"]
            held = {d["Target"]["Id"] for d in found if d["TargetHealth"]["State"] == "healthy"}
            self.samples.append((asked, time.time(), frozenset(set(self.ids) - held)))
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


def elb_and_send_calls(sandbox, since):
    return [
        c
        for c in sandbox.call_log(since=since)
        if (c["service"] == ELB and c["operation"] in ("DeregisterTargets", "RegisterTargets"))
        or c["operation"] == "SendCommand"
    ]


def test_each_batch_leaves_the_target_group_only_during_its_deploy(
    playbook, aws, aws_env, sandbox, simulated, target_group, tmp_path
):
    ids = simulated(3, duration=1.5)
    register(aws, target_group["arn"], ids)
    extra = {
        "region": aws_env["AWS_REGION"],
        "instance_ids": ids,
        "target_group": target_group["name"],
        "port": str(PORT),
        "result_file": str(tmp_path / "check.json"),
        "dry_run": "true",
    }

    # Check mode: the plan, and no elbv2 call at all.
    since = time.time()
    assert_play_ok(playbook.run("ssm_alb/rollout.yml", extra))
    elb_calls = [c for c in sandbox.call_log(since=since) if c["service"] == ELB]
    assert elb_calls == []
    assert in_service(aws, target_group["arn"], ids) == ids

    # The real run, watched from the side.
    since = time.time()
    with Watch(aws, target_group["arn"], ids) as watch:
        result = playbook.run(
            "ssm_alb/rollout.yml", {**extra, "dry_run": "false", "result_file": str(tmp_path / "run.json")}
        )
    assert_play_ok(result)
    for n, instance_id in enumerate(ids, start=1):
        assert f"batch {n}/3: {instance_id} out of tg/{target_group['name']} (draining)" in result.stdout
        assert f"batch {n}/3: {instance_id} back in tg/{target_group['name']} (healthy in" in result.stdout
    run = json.loads((tmp_path / "run.json").read_text())
    assert [b["instance_ids"] for b in run["batches"]] == [[i] for i in ids]

    # The call log: per batch, out, then sent, then back in, before the next batch leaves.
    calls = elb_and_send_calls(sandbox, since)
    assert [c["operation"] for c in calls] == ["DeregisterTargets", "SendCommand", "RegisterTargets"] * 3, calls
    times = [c["ts"] for c in calls]
    assert times == sorted(times)
    windows = {ids[n]: (times[3 * n], times[3 * n + 2]) for n in range(3)}

    # From the side: never more than one instance out, and only inside its own batch's window.
    out_samples = [(asked, answered, out) for asked, answered, out in watch.samples if out]
    assert len(watch.samples) >= 20, len(watch.samples)
    assert all(len(out) == 1 for _a, _b, out in out_samples), out_samples
    for asked, answered, out in out_samples:
        (instance_id,) = out
        start, end = windows[instance_id]
        # The answer came after the batch's deregistration, the question before its registration.
        assert answered >= start, (instance_id, asked, answered, windows[instance_id])
        assert asked <= end, (instance_id, asked, answered, windows[instance_id])
    seen_out = {next(iter(out)) for _a, _b, out in out_samples}
    assert seen_out == set(ids), "each instance was seen out of service during its deploy"
    assert in_service(aws, target_group["arn"], ids) == ids


def test_a_failed_canary_stays_out_and_the_rest_are_never_taken_out(
    playbook, aws, aws_env, sandbox, simulated, target_group, tmp_path
):
    ids = simulated(2, duration=0.5, failure_share=1.0, failure_code=2)
    register(aws, target_group["arn"], ids)
    since = time.time()
    result = playbook.run(
        "ssm_alb/fails.yml",
        {
            "region": aws_env["AWS_REGION"],
            "instance_ids": ids,
            "target_group": target_group["name"],
            "port": str(PORT),
            "result_file": str(tmp_path / "run.json"),
        },
    )
    assert_play_ok(result)
    assert [c["operation"] for c in elb_and_send_calls(sandbox, since)] == ["DeregisterTargets", "SendCommand"]
    assert in_service(aws, target_group["arn"], ids) == ids[1:]


def test_bad_target_group_settings_change_nothing(playbook, aws, aws_env, sandbox, simulated, target_group):
    ids = simulated(1, duration=0.5)
    register(aws, target_group["arn"], ids)
    since = time.time()
    result = playbook.run(
        "ssm_alb/bad_input.yml",
        {"region": aws_env["AWS_REGION"], "instance_id": ids[0], "target_group": target_group["name"]},
    )
    assert_play_ok(result)
    operations = [c["operation"] for c in sandbox.call_log(since=since)]
    assert "SendCommand" not in operations
    assert not {"DeregisterTargets", "RegisterTargets"} & set(operations)
    assert in_service(aws, target_group["arn"], ids) == ids

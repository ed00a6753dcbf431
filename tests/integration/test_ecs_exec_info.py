"""ecs_exec_info against the sandbox's moto (with its ECS scheduler stand-in), through real
ansible-playbook runs.

The cluster, task role, task definition and two services (ECS Exec off and on) are made
with boto3 here. The plays assert what the module returns, in check mode and in real runs;
this file also checks, from the API, that none of those runs changed anything.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import assert_play_ok


def _snapshot(ecs, cluster: str, services: list[str]) -> dict:
    """What a run could change: each service and each of its tasks, as the API shows them."""
    described = ecs.describe_services(cluster=cluster, services=services)["services"]
    tasks = {}
    for name in services:
        arns = ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]
        found = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
        tasks[name] = sorted(found, key=lambda t: t["taskArn"])
    return json.loads(json.dumps({"services": described, "tasks": tasks}, default=str))


@pytest.fixture(scope="module")
def ecs_setup(aws):
    ecs, iam = aws("ecs"), aws("iam")
    run = uuid.uuid4().hex[:8]
    cluster = f"mlops-test-exec-{run}"
    ecs.create_cluster(clusterName=cluster)
    role = iam.create_role(
        RoleName=f"{cluster}-task",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]
    taskdef = ecs.register_task_definition(
        family=f"{cluster}-model",
        taskRoleArn=role["Arn"],
        networkMode="bridge",
        containerDefinitions=[
            {"name": "api", "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/model:1", "memory": 256},
            {"name": "sidecar", "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sidecar:1", "memory": 64},
        ],
    )["taskDefinition"]
    for name, exec_on in (("exec-off", False), ("exec-on", True)):
        ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=taskdef["taskDefinitionArn"],
            desiredCount=2,
            launchType="EC2",
            enableExecuteCommand=exec_on,
        )
    return {"ecs": ecs, "cluster": cluster, "role": role, "taskdef": taskdef}


def test_check_mode_and_idempotence(playbook, ecs_setup):
    """Check mode gives the real answer; real runs report no change; nothing changed."""
    ecs, cluster = ecs_setup["ecs"], ecs_setup["cluster"]
    before = _snapshot(ecs, cluster, ["exec-off", "exec-on"])
    result = playbook.run(
        "ecs_exec_info/attributes.yml",
        {
            "cluster": cluster,
            "role_arn": ecs_setup["role"]["Arn"],
            "role_name": ecs_setup["role"]["RoleName"],
            "taskdef_arn": ecs_setup["taskdef"]["taskDefinitionArn"],
        },
    )
    assert_play_ok(result)
    assert "changed=0" in result.stdout, result.stdout[-3000:]
    after = _snapshot(ecs, cluster, ["exec-off", "exec-on"])
    assert after == before


def test_bad_inputs_fail_clearly(playbook, ecs_setup):
    ecs, cluster = ecs_setup["ecs"], ecs_setup["cluster"]
    before = _snapshot(ecs, cluster, ["exec-off", "exec-on"])
    result = playbook.run("ecs_exec_info/bad_input.yml", {"cluster": cluster})
    assert_play_ok(result)
    assert _snapshot(ecs, cluster, ["exec-off", "exec-on"]) == before

"""The ECS scheduler stand-in (mlops_sandbox.moto_ecs) in a throw-away sandbox, through boto3
over HTTP: service tasks as ECS runs them, which moto alone does not."""

from __future__ import annotations

import boto3
import pytest


@pytest.fixture
def ecs(sandbox_cli):
    up = sandbox_cli("up")
    assert up.returncode == 0, up.stderr
    env = sandbox_cli.exports()
    client = boto3.client(
        "ecs",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_cluster(clusterName="models")
    client.register_task_definition(
        family="model",
        containerDefinitions=[
            {"name": "api", "image": "model:1", "memory": 256},
            {"name": "sidecar", "image": "sidecar:1", "memory": 64},
        ],
    )
    return client


def _running(ecs, service: str) -> list[dict]:
    arns = ecs.list_tasks(cluster="models", serviceName=service)["taskArns"]
    tasks = ecs.describe_tasks(cluster="models", tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["lastStatus"] == "RUNNING"]


def _agents(task: dict) -> dict:
    return {c["name"]: [a["lastStatus"] for a in c.get("managedAgents", [])] for c in task["containers"]}


def test_clusters_list_their_capacity_providers_as_aws_does(ecs):
    (cluster,) = ecs.describe_clusters(clusters=["models"])["clusters"]
    assert cluster["capacityProviders"] == []
    assert cluster["defaultCapacityProviderStrategy"] == []


def test_service_tasks_follow_deployments_and_the_exec_flag(ecs):
    for name, exec_on in (("a", False), ("b", True)):
        ecs.create_service(
            cluster="models", serviceName=name, taskDefinition="model", desiredCount=2, enableExecuteCommand=exec_on
        )

    # CreateService keeps enableExecuteCommand; each service runs its own two tasks, one
    # container per definition, the exec agent running only where exec is on.
    a, b = ecs.describe_services(cluster="models", services=["a", "b"])["services"]
    assert (a["enableExecuteCommand"], b["enableExecuteCommand"]) == (False, True)
    first = a["deployments"][0]["id"]
    tasks_a, tasks_b = _running(ecs, "a"), _running(ecs, "b")
    assert len(tasks_a) == len(tasks_b) == 2
    assert not {t["taskArn"] for t in tasks_a} & {t["taskArn"] for t in tasks_b}
    assert [t["startedBy"] for t in tasks_a] == [first, first]
    assert [t["enableExecuteCommand"] for t in tasks_a + tasks_b] == [False, False, True, True]
    assert [_agents(t) for t in tasks_a] == [{"api": [], "sidecar": []}] * 2
    assert [_agents(t) for t in tasks_b] == [{"api": ["RUNNING"], "sidecar": ["RUNNING"]}] * 2
    assert a["deployments"][0]["rolloutState"] == "COMPLETED"

    # Exec turned on with a new deployment: the old tasks stop, two new ones carry the flag.
    updated = ecs.update_service(cluster="models", service="a", enableExecuteCommand=True, forceNewDeployment=True)
    second = updated["service"]["deployments"][0]["id"]
    assert second != first
    new = _running(ecs, "a")
    assert len(new) == 2
    assert not {t["taskArn"] for t in new} & {t["taskArn"] for t in tasks_a}
    assert [t["startedBy"] for t in new] == [second, second]
    assert [_agents(t) for t in new] == [{"api": ["RUNNING"], "sidecar": ["RUNNING"]}] * 2
    stopped = ecs.describe_tasks(cluster="models", tasks=[t["taskArn"] for t in tasks_a])["tasks"]
    assert {t["lastStatus"] for t in stopped} == {"STOPPED"}

    # Scaled in: one task stops; an update without a new deployment replaces nothing.
    ecs.update_service(cluster="models", service="a", desiredCount=1)
    left = _running(ecs, "a")
    assert len(left) == 1
    assert left[0]["taskArn"] in {t["taskArn"] for t in new}

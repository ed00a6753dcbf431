"""ECS Exec readiness from DescribeServices / DescribeTasks answers shaped as AWS returns them."""

from __future__ import annotations

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _ecs_exec as ex

ARN = "arn:aws:ecs:eu-west-1:123456789012:task/models"


def task(tid, started_by, exec_on=True, status="RUNNING", agent="RUNNING", name="api"):
    container = {"name": name, "lastStatus": status}
    if agent is not None:
        container["managedAgents"] = [{"name": "ExecuteCommandAgent", "lastStatus": agent}]
    return {
        "taskArn": f"{ARN}/{tid}",
        "lastStatus": status,
        "startedBy": started_by,
        "enableExecuteCommand": exec_on,
        "containers": [container],
    }


def service(deployments, desired=2, exec_on=True):
    return {
        "serviceName": "model-a",
        "desiredCount": desired,
        "enableExecuteCommand": exec_on,
        "deployments": deployments,
    }


PRIMARY = {"id": "ecs-svc/2", "status": "PRIMARY", "rolloutState": "COMPLETED", "runningCount": 2}
OLD = {"id": "ecs-svc/1", "status": "ACTIVE", "rolloutState": "COMPLETED", "runningCount": 2}


def test_policy_has_the_four_ssmmessages_actions():
    doc = ex.exec_policy_document()
    assert sorted(doc["Statement"][0]["Action"]) == [
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ]


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        ("arn:aws:iam::123456789012:role/model-a-task", "model-a-task"),
        ("arn:aws:iam::123456789012:role/service/path/model-a-task", "model-a-task"),
        (None, None),
        ("", None),
    ],
)
def test_role_name_from_arn(arn, name):
    assert ex.role_name_from_arn(arn) == name


def test_role_name_from_arn_rejects_other_arns():
    with pytest.raises(ex.ExecError, match="not an IAM role ARN"):
        ex.role_name_from_arn("arn:aws:iam::123456789012:user/ci")


@pytest.mark.parametrize(
    ("t", "ready", "needle"),
    [
        (task("a", "ecs-svc/2"), True, None),
        (task("a", "ecs-svc/1", exec_on=False, agent=None), False, "enableExecuteCommand is false"),
        (task("a", "ecs-svc/2", agent="PENDING"), False, "ExecuteCommandAgent is PENDING"),
        (task("a", "ecs-svc/2", agent=None), False, "ExecuteCommandAgent is absent"),
        (task("a", "ecs-svc/2", status="PROVISIONING"), False, "not RUNNING"),
    ],
)
def test_task_report(t, ready, needle):
    report = ex.task_report(t)
    assert report["ready"] is ready
    assert report["task_id"] == "a"
    if needle:
        assert any(needle in p for p in report["problems"])
    else:
        assert report["problems"] == []


@pytest.mark.parametrize(
    ("svc", "tasks", "settled", "needle"),
    [
        # settled: one deployment, completed, two tasks of it
        (service([PRIMARY]), [task("a", "ecs-svc/2"), task("b", "ecs-svc/2")], True, None),
        # forced deployment in progress: old deployment draining, old tasks still running
        (
            service([{**PRIMARY, "rolloutState": "IN_PROGRESS"}, OLD]),
            [task("a", "ecs-svc/1", exec_on=False), task("b", "ecs-svc/2")],
            False,
            "2 deployments are active",
        ),
        (service([PRIMARY]), [task("a", "ecs-svc/1"), task("b", "ecs-svc/2")], False, "belong to an older deployment"),
        (service([PRIMARY]), [task("b", "ecs-svc/2")], False, "1 of 2 task(s)"),
        (service([{**PRIMARY, "rolloutState": "FAILED"}]), [], False, "is FAILED"),
        (service([]), [], False, "no PRIMARY deployment"),
        # a stopped task of the old deployment does not count
        (
            service([PRIMARY]),
            [task("a", "ecs-svc/2"), task("b", "ecs-svc/2"), task("c", "ecs-svc/1", status="STOPPED")],
            True,
            None,
        ),
    ],
)
def test_rollout_report(svc, tasks, settled, needle):
    report = ex.rollout_report(svc, tasks)
    assert report["settled"] is settled
    if needle:
        assert any(needle in r for r in report["waiting_for"]), report["waiting_for"]


def test_execute_command_line_is_exact_and_quoted():
    line = ex.execute_command_line("models", f"{ARN}/abc", "api", "eu-west-1")
    assert line == (
        f"aws ecs execute-command --region eu-west-1 --cluster models --task {ARN}/abc"
        " --container api --interactive --command /bin/sh"
    )
    assert "'my container'" in ex.execute_command_line("models", "t", "my container")


TASKDEF = {
    "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/model-a:3",
    "taskRoleArn": "arn:aws:iam::123456789012:role/model-a-task",
    "containerDefinitions": [{"name": "api"}, {"name": "sidecar"}],
}


def test_summarize_picks_the_first_ready_task_and_container():
    tasks = [task("a", "ecs-svc/2", exec_on=False, agent=None), task("b", "ecs-svc/2")]
    result = ex.summarize("models", service([PRIMARY]), TASKDEF, tasks, None)
    assert result["task_role_name"] == "model-a-task"
    assert result["container"] == "api"
    assert result["all_tasks_ready"] is False
    assert f"--task {ARN}/b --container api" in result["command"]


def test_summarize_with_no_task_is_not_ready_and_has_no_command():
    result = ex.summarize("models", service([PRIMARY]), TASKDEF, [], "sidecar")
    assert result["all_tasks_ready"] is False
    assert result["command"] is None
    assert result["container"] == "sidecar"


def test_summarize_rejects_an_unknown_container():
    with pytest.raises(
        ex.ExecError, match="container 'web' is not in task definition .*model-a:3 \\(it has api, sidecar\\)"
    ):
        ex.summarize("models", service([PRIMARY]), TASKDEF, [], "web")

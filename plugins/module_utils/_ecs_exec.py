# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What ECS Exec needs from a service and its tasks, as an API can see it.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``ecs_exec_info`` (and the ``ecs_exec`` role).

Plain values in, plain values out: the functions take the dicts boto3 returns for
DescribeServices / DescribeTasks and say whether the rollout settled and whether each
task can be exec'd into (what amazon-ecs-exec-checker checks that the API shows). The
only code that talks to AWS is ``ExecInspector``, given a boto3 ECS client.
"""

from __future__ import annotations

import shlex

EXEC_AGENT = "ExecuteCommandAgent"
DESCRIBE_TASKS_MAX = 100
SSM_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)


class ExecError(Exception):
    """A failure to report as it is: the message says what to fix."""


def exec_policy_document() -> dict:
    """The task role's inline policy ECS Exec needs (the four ssmmessages actions)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(SSM_ACTIONS), "Resource": "*"}],
    }


def role_name_from_arn(arn: str | None) -> str | None:
    """``arn:aws:iam::1:role/path/name`` -> ``name``."""
    if not arn:
        return None
    if ":role/" not in arn:
        raise ExecError(f"{arn} is not an IAM role ARN")
    return arn.rsplit("/", 1)[-1]


def task_report(task: dict) -> dict:
    """Can this task be exec'd into? The flag, its containers' exec agents, and why not."""
    problems = []
    if task.get("lastStatus") != "RUNNING":
        problems.append(f"task is {task.get('lastStatus')}, not RUNNING")
    if not task.get("enableExecuteCommand"):
        problems.append("enableExecuteCommand is false: the task started before exec was enabled, replace it")
    agents = {}
    for container in task.get("containers", []):
        agent = next((a for a in container.get("managedAgents") or [] if a.get("name") == EXEC_AGENT), None)
        agents[container.get("name")] = agent.get("lastStatus") if agent else None
        if task.get("enableExecuteCommand") and (agent is None or agent.get("lastStatus") != "RUNNING"):
            state = agent.get("lastStatus") if agent else "absent"
            problems.append(f"container {container.get('name')}: {EXEC_AGENT} is {state}, not RUNNING")
    return {
        "task_arn": task.get("taskArn"),
        "task_id": (task.get("taskArn") or "").rsplit("/", 1)[-1],
        "last_status": task.get("lastStatus"),
        "started_by": task.get("startedBy"),
        "enable_execute_command": bool(task.get("enableExecuteCommand")),
        "exec_agents": agents,
        "ready": not problems,
        "problems": problems,
    }


def rollout_report(service: dict, tasks: list[dict]) -> dict:
    """Has the service settled on its primary deployment, with only that deployment's tasks?"""
    deployments = service.get("deployments") or []
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    running = [t for t in tasks if t.get("lastStatus") == "RUNNING"]
    primary_id = primary.get("id") if primary else None
    new = [t for t in running if t.get("startedBy") == primary_id]
    old = [t for t in running if t.get("startedBy") != primary_id]
    desired = service.get("desiredCount", 0)
    reasons = []
    if primary is None:
        reasons.append("the service has no PRIMARY deployment")
    if len(deployments) > 1:
        reasons.append(f"{len(deployments)} deployments are active (the old one is still draining)")
    if primary is not None and primary.get("rolloutState") not in (None, "COMPLETED"):
        reasons.append(f"rollout of {primary_id} is {primary.get('rolloutState')}")
    if old:
        reasons.append(f"{len(old)} running task(s) belong to an older deployment")
    if len(new) != desired:
        reasons.append(f"{len(new)} of {desired} task(s) of {primary_id} are running")
    return {
        "deployment_id": primary_id,
        "desired_count": desired,
        "running_new": len(new),
        "running_old": len(old),
        "settled": not reasons,
        "waiting_for": reasons,
    }


def execute_command_line(cluster: str, task_arn: str, container: str, region: str | None = None) -> str:
    """The exact ``aws ecs execute-command`` line to open a shell in the task."""
    words = ["aws", "ecs", "execute-command"]
    if region:
        words += ["--region", region]
    words += [
        "--cluster",
        cluster,
        "--task",
        task_arn,
        "--container",
        container,
        "--interactive",
        "--command",
        "/bin/sh",
    ]
    return " ".join(shlex.quote(w) for w in words)


def summarize(
    cluster: str, service: dict, task_definition: dict, tasks: list[dict], container: str | None, region=None
) -> dict:
    """Everything ``ecs_exec_info`` returns, from the three API answers."""
    reports = [task_report(t) for t in tasks]
    names = [c.get("name") for c in task_definition.get("containerDefinitions", [])]
    if container and container not in names:
        arn = task_definition.get("taskDefinitionArn")
        raise ExecError(f"container {container!r} is not in task definition {arn} (it has {', '.join(names)})")
    chosen = container or (names[0] if names else None)
    ready = [r for r in reports if r["ready"]]
    rollout = rollout_report(service, tasks)
    return {
        "service_exec_enabled": bool(service.get("enableExecuteCommand")),
        "task_definition_arn": task_definition.get("taskDefinitionArn"),
        "task_role_arn": task_definition.get("taskRoleArn"),
        "task_role_name": role_name_from_arn(task_definition.get("taskRoleArn")),
        "container": chosen,
        "rollout": rollout,
        "tasks": reports,
        "all_tasks_ready": bool(reports) and len(ready) == len(reports),
        "command": execute_command_line(cluster, ready[0]["task_arn"], chosen, region) if ready and chosen else None,
    }


class ExecInspector:
    """Reads a service, its task definition and its running tasks through a boto3 ECS client."""

    def __init__(self, client):
        self.client = client

    def service(self, cluster: str, name: str) -> dict:
        answer = self.client.describe_services(cluster=cluster, services=[name], aws_retry=True)
        found = [s for s in answer.get("services", []) if s.get("status") != "INACTIVE"]
        if not found:
            raise ExecError(f"service {name} not found in cluster {cluster}")
        return found[0]

    def task_definition(self, arn: str) -> dict:
        return self.client.describe_task_definition(taskDefinition=arn, aws_retry=True)["taskDefinition"]

    def running_tasks(self, cluster: str, service_name: str) -> list[dict]:
        # Paged by hand so each call goes through the client's retry decorator (aws_retry).
        arns, token = [], None
        while True:
            extra = {"nextToken": token} if token else {}
            page = self.client.list_tasks(
                cluster=cluster, serviceName=service_name, desiredStatus="RUNNING", aws_retry=True, **extra
            )
            arns += page.get("taskArns", [])
            token = page.get("nextToken")
            if not token:
                break
        tasks = []
        for start in range(0, len(arns), DESCRIBE_TASKS_MAX):
            chunk = arns[start : start + DESCRIBE_TASKS_MAX]
            tasks += self.client.describe_tasks(cluster=cluster, tasks=chunk, aws_retry=True).get("tasks", [])
        return sorted(tasks, key=lambda t: t.get("taskArn", ""))

    def inspect(self, cluster: str, service_name: str, container: str | None, region: str | None = None) -> dict:
        service = self.service(cluster, service_name)
        task_definition = self.task_definition(service["taskDefinition"])
        tasks = self.running_tasks(cluster, service["serviceName"])
        result = summarize(cluster, service, task_definition, tasks, container, region)
        result["service"] = service
        return result

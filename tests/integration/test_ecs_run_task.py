"""ecs_run_task and eventbridge_ecs_target through real ansible-playbook runs, against the
sandbox's ECS, which runs each task as real containers (the base image, pushed to the
sandbox's ECR), their output in CloudWatch Logs.

Each case registers its own task definition (a shell line as the container's command) in
a cluster of this module, and checks the module's result and output, and the task and its
log from the API.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import boto3
import pytest

from .conftest import assert_play_ok
from .deploy_support import RegistryClient, ecr_credentials, ensure_repository

BASE_IMAGE = os.environ.get("MLOPS_BASE_IMAGE", "mlops-deploy/debian:bookworm")


@pytest.fixture(scope="module")
def ecs_env(aws, tmp_path_factory):
    """A cluster, a log group, the base image in the sandbox's ECR, the sandbox's subnet."""
    run_id = uuid.uuid4().hex[:8]
    ecs, logs, ec2, ecr = aws("ecs"), aws("logs"), aws("ec2"), aws("ecr")
    ensure_repository(ecr, "mlops-test/ecs-base")
    registry = RegistryClient(tmp_path_factory.mktemp("docker"), ecr_credentials(ecr))
    registry.login()
    image = registry.uri("base", "mlops-test/ecs-base")
    registry.docker("tag", BASE_IMAGE, image)
    registry.docker("push", image)
    cluster = f"mlops-test-run-{run_id}"
    ecs.create_cluster(clusterName=cluster)
    group = f"/mlops/test/ecs-run-task/{run_id}"
    logs.create_log_group(logGroupName=group)
    subnets = ec2.describe_subnets()["Subnets"]
    assert subnets, "the sandbox has no VPC subnet (its SSM service makes one when it starts)"
    yield {
        "ecs": ecs,
        "logs": logs,
        "registry": registry,
        "image": image,
        "cluster": cluster,
        "group": group,
        "subnet": subnets[0]["SubnetId"],
        "out": tmp_path_factory.mktemp("results"),
    }
    for arn in ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]:
        ecs.stop_task(cluster=cluster, task=arn, reason="test clean-up")


def register(env, family, containers, **extra) -> dict:
    """A Fargate task definition; containers: (name, shell line[, {definition overrides}])."""
    definitions = []
    for item in containers:
        name, line = item[0], item[1]
        definition = {
            "name": name,
            "image": env["image"],
            "essential": True,
            "command": ["sh", "-c", line],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": env["group"],
                    "awslogs-region": "eu-west-1",
                    "awslogs-stream-prefix": family,
                },
            },
        }
        definition.update(item[2] if len(item) > 2 else {})
        definitions.append(definition)
    return env["ecs"].register_task_definition(
        family=f"{env['cluster']}-{family}", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
        cpu="256", memory="512", containerDefinitions=definitions, **extra,
    )["taskDefinition"]  # fmt: skip


def args(env, task_definition, **extra) -> dict:
    values = {
        "cluster": env["cluster"],
        "task_definition": task_definition["taskDefinitionArn"],
        "launch_type": "FARGATE",
        "network_configuration": {"subnets": [env["subnet"]]},
        "timeout": 120,
    }
    values.update(extra)
    return values


def run_module(playbook, env, task_args, check=False):
    out = Path(env["out"]) / f"{uuid.uuid4().hex}.json"
    result = playbook.run("ecs_run_task/run.yml", {"task": task_args, "out": str(out), "check": check})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Traceback (most recent call last)" not in result.stdout + result.stderr
    return json.loads(out.read_text()), result.stdout


def tasks_of(env) -> set[str]:
    ecs = env["ecs"]
    return set(ecs.list_tasks(cluster=env["cluster"])["taskArns"])


def stream_messages(env, stream) -> list[str]:
    events = env["logs"].get_log_events(logGroupName=env["group"], logStreamName=stream, startFromHead=True)["events"]
    return [e["message"] for e in events]


# --------------------------------------------------------------------------- outcomes


def test_exit_0_returns_its_log_lines(playbook, ecs_env):
    td = register(ecs_env, "ok", [("job", "echo line 1; sleep 1; echo line 2 >&2; sleep 1; echo line 3")])
    result, output = run_module(playbook, ecs_env, args(ecs_env, td))
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True
    assert result["exit_code"] == 0
    assert result["stop_code"] == "EssentialContainerExited"
    assert result["log_lines"] == ["line 1", "line 2", "line 3"]
    assert result["log_stream"] == f"ok/job/{result['task_id']}"
    assert [s["status"] for s in result["statuses"]][0] == "PROVISIONING"
    assert "RUNNING" in [s["status"] for s in result["statuses"]]
    assert result["statuses"][-1]["status"] == "STOPPED"
    assert result["duration"] >= 2
    # Live lines while it ran, and the same lines in CloudWatch.
    assert "[job] line 1" in output
    assert "[job] line 3" in output
    assert f"ecs task {result['task_id'][:8]}: RUNNING" in output
    assert stream_messages(ecs_env, result["log_stream"]) == ["line 1", "line 2", "line 3"]
    task = ecs_env["ecs"].describe_tasks(cluster=ecs_env["cluster"], tasks=[result["task_arn"]])["tasks"][0]
    assert task["lastStatus"] == "STOPPED"
    assert task["containers"][0]["exitCode"] == 0


def test_exit_3_fails_with_the_exit_code_and_the_last_lines(playbook, ecs_env):
    td = register(ecs_env, "exit3", [("job", "for i in 1 2 3 4 5 6 7; do echo step $i; done; echo giving up; exit 3")])
    result, output = run_module(playbook, ecs_env, args(ecs_env, td, tail_lines=3))
    assert result["failed"] is True
    first = result["msg"].splitlines()[0]
    assert first == f"task {result['task_id']} failed: essential container job exited with code 3"
    assert result["msg"].splitlines()[-2:] == ["  step 7", "  giving up"]
    assert result["exit_code"] == 3
    assert result["containers"][0]["exit_code"] == 3
    assert result["log_lines"] == ["step 6", "step 7", "giving up"]
    assert "container job exited with code 3" in output


def test_a_missing_image_fails_with_cannot_pull_container_error(playbook, ecs_env):
    missing = ecs_env["image"].replace(":base", ":never-pushed")
    td = register(ecs_env, "nopull", [("job", "true", {"image": missing})])
    result, _output = run_module(playbook, ecs_env, args(ecs_env, td))
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"task {result['task_id']} failed to start (container job): CannotPullContainerError"
    )
    assert "not found" in result["msg"]
    assert result["stop_code"] == "TaskFailedToStart"
    assert result["exit_code"] is None
    assert result["containers"][0]["reason"].startswith("CannotPullContainerError")
    assert result["log_lines"] == []


def test_the_timeout_stops_the_task_and_says_so(playbook, ecs_env):
    td = register(ecs_env, "slow", [("job", "echo started; sleep 600", {"stopTimeout": 2})])
    # The timeout counts from RunTask, provisioning and the image pull included (seconds
    # on a loaded machine): 25 s leaves the container running when it passes.
    started = time.monotonic()
    result, output = run_module(playbook, ecs_env, args(ecs_env, td, timeout=25))
    assert time.monotonic() - started < 120
    assert result["failed"] is True
    assert result["timed_out"] is True
    assert result["msg"].startswith(
        f"task {result['task_id']} did not finish within the timeout of 25s; it was stopped"
    )
    assert "timeout of 25s reached: stopping it (StopTask)" in output
    assert result["stop_code"] == "UserInitiated"
    assert result["stopped_reason"] == "mlops.deploy.ecs_run_task: timeout of 25s reached"
    # sh as PID 1 ignores SIGTERM: SIGKILL after the stopTimeout.
    assert result["exit_code"] == 137
    assert result["log_lines"] == ["started"]


def test_two_essential_containers_one_failing(playbook, ecs_env):
    td = register(
        ecs_env,
        "pair",
        [("trainer", "echo training; sleep 300", {"stopTimeout": 2}), ("sidecar", "echo sidecar up; sleep 2; exit 7")],
    )
    result, _output = run_module(playbook, ecs_env, args(ecs_env, td))
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"task {result['task_id']} failed: essential container sidecar exited with code 7;"
        " stopped with it: trainer (137)"
    )
    codes = {c["name"]: c["exit_code"] for c in result["containers"]}
    assert codes == {"trainer": 137, "sidecar": 7}
    assert result["followed_container"] == "trainer"
    assert result["log_lines"] == ["training"]
    assert result["stop_code"] == "EssentialContainerExited"


def test_a_non_essential_container_failing_does_not_fail_the_task(playbook, ecs_env):
    td = register(ecs_env, "helper", [("trainer", "sleep 2; echo done"), ("helper", "exit 5", {"essential": False})])
    result, _output = run_module(playbook, ecs_env, args(ecs_env, td))
    assert not result.get("failed"), result["msg"]
    assert {c["name"]: c["exit_code"] for c in result["containers"]} == {"trainer": 0, "helper": 5}


def test_overrides_reach_the_container_and_its_credentials_are_the_task_roles(playbook, ecs_env):
    role = f"arn:aws:iam::123456789012:role/{ecs_env['cluster']}-task"
    line = (
        "echo model=$MODEL_VERSION; "
        'python3 -c "import json, os, urllib.request; '
        "print('key', json.load(urllib.request.urlopen('http://169.254.170.2' + "
        "os.environ['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI']))['AccessKeyId'])\""
    )
    td = register(ecs_env, "creds", [("job", "echo not overridden")], taskRoleArn=role)
    overrides = [{"name": "job", "command": ["sh", "-c", line], "environment": {"MODEL_VERSION": "v7"}}]
    result, _output = run_module(playbook, ecs_env, args(ecs_env, td, container_overrides=overrides))
    assert not result.get("failed"), result["msg"]
    assert result["log_lines"][0] == "model=v7"
    key = result["log_lines"][1].split()[1]
    # moto resolves the caller from the access key alone (it checks no signature).
    caller = boto3.client(
        "sts",
        endpoint_url=playbook.env["AWS_ENDPOINT_URL"],
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key="unused",
    ).get_caller_identity()
    assert caller["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{ecs_env['cluster']}-task/{result['task_id']}"
    assert result["overrides"]["containerOverrides"][0]["environment"] == [{"name": "MODEL_VERSION", "value": "v7"}]


# --------------------------------------------------------------------------- modes


def test_check_mode_runs_nothing(playbook, ecs_env):
    td = register(ecs_env, "check", [("job", "echo should not run")])
    before = tasks_of(ecs_env)
    result, _output = run_module(playbook, ecs_env, args(ecs_env, td), check=True)
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True
    assert result["check_mode"] is True
    assert result["msg"].startswith(f"would run {td['family']}:{td['revision']} on cluster {ecs_env['cluster']}")
    assert result["run_task_request"]["taskDefinition"] == td["taskDefinitionArn"]
    assert "task_arn" not in result
    assert tasks_of(ecs_env) == before


def test_wait_false_returns_the_task_arn_at_once(playbook, ecs_env):
    td = register(ecs_env, "nowait", [("job", "sleep 3; echo finished")])
    result, _output = run_module(playbook, ecs_env, args(ecs_env, td, wait=False))
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True
    assert result["last_status"] == "PROVISIONING"
    assert result["log_stream"] == f"nowait/job/{result['task_id']}"
    waiter = ecs_env["ecs"].get_waiter("tasks_stopped")
    waiter.wait(cluster=ecs_env["cluster"], tasks=[result["task_arn"]], WaiterConfig={"Delay": 1, "MaxAttempts": 90})
    assert stream_messages(ecs_env, result["log_stream"]) == ["finished"]


def test_following_a_task_started_elsewhere(playbook, ecs_env):
    td = register(ecs_env, "elsewhere", [("job", "echo one; sleep 2; echo two; exit 4")])
    task = ecs_env["ecs"].run_task(
        cluster=ecs_env["cluster"], taskDefinition=td["taskDefinitionArn"], launchType="FARGATE",
        startedBy="someone-else", networkConfiguration={"awsvpcConfiguration": {"subnets": [ecs_env["subnet"]]}},
    )["tasks"][0]  # fmt: skip
    result, _output = run_module(playbook, ecs_env, {"cluster": ecs_env["cluster"], "task_arn": task["taskArn"]})
    assert result["failed"] is True
    assert result["changed"] is False
    assert "essential container job exited with code 4" in result["msg"]
    assert result["log_lines"] == ["one", "two"]
    assert result["started_by"] == "someone-else"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cluster": "no-such-cluster"}, "cluster 'no-such-cluster' does not exist in eu-west-1"),
        ({"task_definition": "no-such-family"}, "task definition 'no-such-family' not found in eu-west-1"),
        (
            {"container_overrides": [{"name": "nope", "command": ["true"]}]},
            "container_overrides names 'nope', which is not",
        ),
        ({"timeout": -5}, "timeout must be a positive number of seconds, not -5"),
        ({"follow_container": "nope"}, "follow_container 'nope' is not a container of"),
        ({"network_configuration": None}, "uses the awsvpc network mode"),
    ],
)
def test_bad_input_says_what_to_fix_and_starts_nothing(playbook, ecs_env, change, message):
    td = register(ecs_env, "bad", [("job", "echo should not run")])
    before = tasks_of(ecs_env)
    task_args = args(ecs_env, td)
    task_args.update(change)
    task_args = {k: v for k, v in task_args.items() if v is not None}
    result, output = run_module(playbook, ecs_env, task_args)
    assert result["failed"] is True
    assert message in result["msg"], result["msg"]
    assert "Traceback" not in output
    assert tasks_of(ecs_env) == before


# --------------------------------------------------------------------------- eventbridge_ecs_target


def test_eventbridge_target_quartet_then_an_event_runs_the_task_with_its_input(playbook, ecs_env, aws):
    td = register(ecs_env, "target", [("job", "echo what=$WHAT")])
    rule = f"{ecs_env['cluster']}-rule"
    target = {
        "rule": rule,
        "event_pattern": {"source": ["mlops.test"], "detail-type": [rule]},
        "target_id": "run",
        "cluster": ecs_env["cluster"],
        "task_definition": td["family"],
        "role_arn": "arn:aws:iam::123456789012:role/events-test",
        "launch_type": "FARGATE",
        "network_configuration": {"subnets": [ecs_env["subnet"]]},
        "environment_from_event": {"WHAT": "$.detail.what"},
    }
    assert_play_ok(playbook.run("ecs_run_task/eventbridge_target.yml", {"target": target, "phase": "put"}))
    events = aws("events")
    events.put_events(Entries=[{"Source": "mlops.test", "DetailType": rule, "Detail": json.dumps({"what": "a b"})}])
    started_by = f"events-rule/{rule}"[:36]

    def stopped():
        arns = ecs_env["ecs"].list_tasks(cluster=ecs_env["cluster"], startedBy=started_by)["taskArns"]
        tasks = ecs_env["ecs"].describe_tasks(cluster=ecs_env["cluster"], tasks=arns)["tasks"] if arns else []
        return [t for t in tasks if t["lastStatus"] == "STOPPED"]

    deadline = time.monotonic() + 90
    while not stopped() and time.monotonic() < deadline:
        time.sleep(1)
    (task,) = stopped()
    assert task["containers"][0]["exitCode"] == 0
    stream = f"target/job/{task['taskArn'].rsplit('/', 1)[-1]}"
    assert stream_messages(ecs_env, stream) == ["what=a b"]
    assert_play_ok(playbook.run("ecs_run_task/eventbridge_target.yml", {"target": target, "phase": "remove"}))
    assert events.list_targets_by_rule(Rule=rule)["Targets"] == []

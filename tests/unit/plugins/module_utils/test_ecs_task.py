"""ecs_run_task's rules on DescribeTasks payloads recorded from real runs
(tests/unit/fixtures/ecs/capture.py) and a few written from AWS's documentation."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _ecs_task as et
from ansible_collections.mlops.deploy.plugins.module_utils import _ecs_task_run as run

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ecs" / "describe_tasks.json"


def _times(value):
    """The captured JSON with its *At fields as datetimes again, as boto3 returns them."""
    if isinstance(value, dict):
        return {
            k: datetime.fromisoformat(v) if k.endswith("At") and isinstance(v, str) else _times(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_times(v) for v in value]
    return value


RECORDED = _times(json.loads(FIXTURES.read_text()))


def scenario(name):
    data = copy.deepcopy(RECORDED[name])
    return data["task_definition"], data["snapshots"]


def final(name):
    task_definition, snapshots = scenario(name)
    return et.fold(snapshots[-1], task_definition), task_definition


# Written from AWS's "stopped tasks errors" page: a container the kernel killed for memory,
# a Fargate Spot task reclaimed, and an essential container ECS lost track of.
AWS_DOCUMENTED = {
    "oom": {
        "taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/training/0a1b2c3d4e5f",
        "lastStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "containers": [
            {
                "name": "train",
                "lastStatus": "STOPPED",
                "exitCode": 137,
                "reason": "OutOfMemoryError: Container killed due to memory usage",
            }
        ],
    },
    "spot": {
        "taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/training/1a1b2c3d4e5f",
        "lastStatus": "STOPPED",
        "stopCode": "SpotInterruption",
        "stoppedReason": "Your Spot Task was interrupted.",
        "containers": [{"name": "train", "lastStatus": "STOPPED", "exitCode": 0}],
    },
    "no_exit_code": {
        "taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/training/2a1b2c3d4e5f",
        "lastStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "containers": [
            {"name": "train", "lastStatus": "STOPPED", "reason": "DockerTimeoutError: could not transition"}
        ],
    },
    "resource_initialization": {
        "taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/training/3a1b2c3d4e5f",
        "lastStatus": "STOPPED",
        "stopCode": "TaskFailedToStart",
        "stoppedReason": "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
        "retrieval failed: unable to retrieve ecr registry auth",
        "containers": [{"name": "train", "lastStatus": "STOPPED"}],
    },
}
TRAIN_DEFINITION = {
    "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/train:1",
    "containerDefinitions": [{"name": "train", "essential": True}],
}


# ------------------------------------------------------------------------ verdicts


@pytest.mark.parametrize(
    ("name", "failed", "words"),
    [
        ("success", False, ["succeeded", "job exited with code 0"]),
        ("exit_3", True, ["essential container job exited with code 3"]),
        ("pull_failure", True, ["failed to start (container job)", "CannotPullContainerError", "not found"]),
        ("stopped_by_user", True, ["essential container job exited with code 137"]),
        ("two_essential_one_fails", True, ["sidecar exited with code 7"]),
        ("non_essential_fails", False, ["succeeded", "trainer exited with code 0"]),
    ],
)
def test_verdict_of_recorded_runs(name, failed, words):
    folded, task_definition = final(name)
    verdict_failed, message = et.verdict(folded, et.followed_container(task_definition))
    assert verdict_failed is failed
    for word in words:
        assert word in message, message


def test_a_task_stopped_by_someone_whose_container_exited_0_is_still_a_failure():
    folded, _task_definition = final("stopped_by_user")
    folded["containers"][0]["exit_code"] = 0  # it handled SIGTERM
    failed, message = et.verdict(folded, "job")
    assert failed
    assert "UserInitiated" in message
    assert "stopped by the fixture capture" in message


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("oom", ["exited with code 137"]),
        ("spot", ["SpotInterruption", "Fargate Spot capacity was reclaimed"]),
        ("no_exit_code", ["container train stopped without an exit code", "DockerTimeoutError"]),
        ("resource_initialization", ["failed to start", "ResourceInitializationError"]),
    ],
)
def test_verdict_of_aws_documented_stops(name, words):
    folded = et.fold(AWS_DOCUMENTED[name], TRAIN_DEFINITION)
    failed, message = et.verdict(folded, "train")
    assert failed
    for word in words:
        assert word in message, message
    assert et.fold(AWS_DOCUMENTED["oom"], TRAIN_DEFINITION)["containers"][0]["reason"].startswith("OutOfMemoryError")


def test_the_timeout_verdict_says_whether_the_task_was_stopped():
    folded, _task_definition = final("stopped_by_user")
    assert et.verdict(folded, "job", timed_out=True, timeout=60) == (
        True,
        "task %s did not finish within the timeout of 60s; it was stopped (StopTask)" % folded["task_id"],
    )
    running = dict(folded, last_status="RUNNING")
    failed, message = et.verdict(running, "job", timed_out=True, timeout=60, stopped=False)
    assert failed
    assert "still RUNNING; left running" in message


def test_start_failure_is_read_from_the_stop_code_and_the_reasons():
    folded, _task_definition = final("pull_failure")
    assert et.start_failure(folded).startswith("CannotPullContainerError: pull image manifest")
    assert et.start_failure(final("success")[0]) is None


# ------------------------------------------------------------------------ folding


def test_fold_gives_exit_codes_streams_times_and_duration():
    folded, task_definition = final("two_essential_one_fails")
    task_id = folded["task_id"]
    assert folded["task_arn"].endswith("/" + task_id)
    assert folded["last_status"] == "STOPPED"
    assert folded["stop_code"] == "EssentialContainerExited"
    by_name = {c["name"]: c for c in folded["containers"]}
    assert (by_name["trainer"]["exit_code"], by_name["sidecar"]["exit_code"]) == (0, 7)
    assert by_name["sidecar"]["log_stream"] == "two_essential_one_fails/sidecar/%s" % task_id
    assert by_name["trainer"]["log_group"] == "/mlops/fixtures/ecs"
    assert by_name["trainer"]["image_digest"].startswith("sha256:")
    assert folded["duration"] > 0
    assert folded["started_at"] < folded["stopped_at"]


def test_changes_along_a_recorded_run_tell_each_status_and_each_exit_once():
    task_definition, snapshots = scenario("exit_3")
    lines, before = [], None
    for snapshot in snapshots:
        after = et.fold(snapshot, task_definition)
        lines += et.changes(before, after)
        before = after
    assert lines == [
        "PROVISIONING",
        "PENDING",
        "RUNNING",
        "DEPROVISIONING",
        "container job exited with code 3",
        "STOPPED (EssentialContainerExited: Essential container in task exited)",
    ]


def test_changes_of_a_container_that_never_ran_say_so_with_its_reason():
    task_definition, snapshots = scenario("pull_failure")
    before = et.fold(snapshots[-3], task_definition)
    after = et.fold(snapshots[-1], task_definition)
    lines = et.changes(before, after)
    assert lines[0].startswith("STOPPED (TaskFailedToStart: CannotPullContainerError")
    assert lines[1].startswith("container job stopped without an exit code: CannotPullContainerError")


@pytest.mark.parametrize(
    ("settings", "runtime", "expected"),
    [
        ({"group": "/g", "prefix": "train"}, None, "train/job/abc123"),
        ({"group": "/g", "prefix": None}, "d0cker1d", "d0cker1d"),
        ({"group": "/g", "prefix": None}, None, None),
        (None, "d0cker1d", None),
    ],
)
def test_stream_name(settings, runtime, expected):
    assert et.stream_name(settings, "job", "arn:aws:ecs:eu-west-1:1:task/c/abc123", runtime) == expected


def test_log_settings_come_from_the_awslogs_options_only():
    definition = {
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/g", "awslogs-region": "r"}}
    }
    assert et.log_settings(definition) == {"group": "/g", "region": "r", "prefix": None}
    assert et.log_settings({"logConfiguration": {"logDriver": "json-file"}}) is None
    assert et.log_settings({}) is None


def test_the_followed_container_is_the_first_essential_one_unless_named():
    task_definition, _snapshots = scenario("non_essential_fails")
    assert et.followed_container(task_definition) == "trainer"
    assert et.followed_container(task_definition, "helper") == "helper"
    with pytest.raises(
        et.TaskError,
        match=r"follow_container 'nope' is not a container of .*fixture-non-essential-fails:\d+"
        r" \(it has trainer, helper\)",
    ):
        et.followed_container(task_definition, "nope")


# ------------------------------------------------------------------------ the request


PARAMS = {
    "cluster": "training",
    "task_definition": "fixture-exit-3",
    "launch_type": "FARGATE",
    "network_configuration": {"subnets": ["subnet-1"], "security_groups": ["sg-1"], "assign_public_ip": False},
    "container_overrides": [],
    "tags": {},
    "timeout": 60,
    "tail_lines": 20,
    "poll_max_interval": 10.0,
}


def test_run_task_request_from_the_options():
    task_definition, _snapshots = scenario("exit_3")
    params = dict(
        PARAMS,
        container_overrides=[{"name": "job", "command": ["sh", "-c", "exit 0"], "environment": {"B": 2, "A": True}}],
        tags={"team": "ml"},
        started_by="ci-42",
    )
    assert et.run_task_request(params, task_definition) == {
        "cluster": "training",
        "taskDefinition": task_definition["taskDefinitionArn"],
        "count": 1,
        "launchType": "FARGATE",
        "startedBy": "ci-42",
        "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}
        },
        "overrides": {
            "containerOverrides": [
                {
                    "name": "job",
                    "command": ["sh", "-c", "exit 0"],
                    "environment": [{"name": "A", "value": "true"}, {"name": "B", "value": "2"}],
                }
            ]
        },
        "tags": [{"key": "team", "value": "ml"}],
    }


def test_capacity_provider_strategy_in_the_request():
    task_definition, _snapshots = scenario("exit_3")
    params = dict(
        PARAMS, launch_type=None, capacity_provider_strategy=[{"capacity_provider": "FARGATE_SPOT", "weight": 1}]
    )
    request = et.run_task_request(params, task_definition)
    assert request["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "launchType" not in request


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"container_overrides": [{"name": "nope"}]}, "container_overrides names 'nope', which is not a container of"),
        ({"container_overrides": [{"name": "job"}, {"name": "job"}]}, "names 'job' twice"),
        ({"container_overrides": [{"name": "job", "memory": -1}]}, "memory must be a positive number"),
        ({"container_overrides": [{"name": "job", "environment": {"1X": "a"}}]}, "'1X' is not a valid environment"),
        ({"container_overrides": [{"name": "job", "environment": {"A": {"b": 1}}}]}, "environment A must be a string"),
        ({"container_overrides": [{"name": "job", "environment": "A=1"}]}, "environment must be a mapping"),
        ({"network_configuration": None}, "uses the awsvpc network mode .* give network_configuration.subnets"),
        ({"network_configuration": {"subnets": []}}, "subnets must list at least one subnet"),
    ],
)
def test_bad_requests_say_what_to_fix(change, message):
    task_definition, _snapshots = scenario("exit_3")
    with pytest.raises(et.TaskError, match=message):
        et.run_task_request(dict(PARAMS, **change), task_definition)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timeout": -5}, "timeout must be a positive number of seconds, not -5"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"started_by": "x" * 37}, "started_by must be 1 to 36 characters"),
        ({"task_definition": "bad name!"}, "is not a family, family:revision or task definition ARN"),
        ({"task_definition": None, "task_arn": "i-123"}, "is not an ECS task ARN"),
        ({"poll_max_interval": 0.1}, "poll_max_interval must be at least 1 second"),
    ],
)
def test_bad_options_say_what_to_fix(change, message):
    with pytest.raises(et.TaskError, match=message):
        et.check_options(dict(PARAMS, **change))


@pytest.mark.parametrize(
    "reference",
    ["train", "train:7", "arn:aws:ecs:eu-west-1:123456789012:task-definition/train:7", "my_job-2"],
)
def test_task_definition_references(reference):
    assert et.check_task_definition(reference) == reference


# ------------------------------------------------------------------------ pacing


def test_pacing_backs_off_while_quiet_and_comes_back_after_lines():
    pacing = et.Pacing(log_min=1.5, log_max=3.0, describe_max=10.0)
    assert pacing.after_logs(True) == 1.5
    assert pacing.log_went_quiet() is False
    assert [pacing.after_logs(False) for _call in range(3)] == [2.25, 3.0, 3.0]
    assert pacing.log_went_quiet() is True  # once, after lines stopped coming
    assert pacing.log_went_quiet() is False
    assert pacing.after_logs(True) == 1.5
    assert pacing.after_describe(False, "PENDING") == 1.0
    assert [pacing.after_describe(False, "RUNNING") for _call in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert pacing.after_describe(True, "RUNNING") == 1.0


# ------------------------------------------------------------------------ the follow loop, replayed


class Replay:
    """EcsApi's methods answering from a recorded run, on a clock the test moves."""

    def __init__(self, name, lines=(), stop_after=None):
        self.task_definition, self.snapshots = scenario(name)
        self.at = 0
        self.now = 0.0
        self.lines = list(lines)
        self.read = 0
        self.stop_after = stop_after
        self.stopped = None
        self.calls = run.EcsApi(None, None).calls

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def describe_cluster(self, cluster):
        self.calls["DescribeClusters"] += 1
        return {"clusterName": cluster, "status": "ACTIVE"}

    def describe_task_definition(self, reference):
        self.calls["DescribeTaskDefinition"] += 1
        return self.task_definition

    def run_task(self, request):
        self.calls["RunTask"] += 1
        return self.snapshots[0]

    def describe_task(self, cluster, arn):
        self.calls["DescribeTasks"] += 1
        if self.stop_after is None or self.stopped is not None:
            self.at = min(self.at + 1, len(self.snapshots) - 1)
        else:
            self.at = min(self.at + 1, self.stop_after)
        return self.snapshots[self.at]

    def stop_task(self, cluster, arn, reason):
        self.calls["StopTask"] += 1
        self.stopped = reason

    def log_events(self, region, group, stream, token):
        self.calls["GetLogEvents"] += 1
        start = token or 0
        events = [{"message": m} for m in self.lines[start:]]
        return events, len(self.lines)


def _params(**change):
    params = dict(PARAMS, task_definition="fixture-exit-3", follow_container=None, follow_logs=True, wait=True)
    params.update(change)
    return params


def test_the_follow_loop_on_a_recorded_failure_returns_the_exit_code_and_the_last_lines():
    api = Replay("exit_3", lines=["about to fail"])
    printed = []
    runner = run.TaskRun(api, _params(), report=printed.append, clock=api.clock, sleep=api.sleep)
    result, failure = runner.run()
    assert failure.startswith("task %s failed: essential container job exited with code 3" % result["task_id"])
    assert failure.endswith("last lines of job:\n  about to fail")
    assert result["exit_code"] == 3
    assert result["log_lines"] == ["about to fail"]
    assert result["changed"] is True
    assert "[job] about to fail" in printed
    assert [s["status"] for s in result["statuses"]][-1] == "STOPPED"
    assert result["api_calls"]["RunTask"] == 1


def test_the_timeout_stops_the_task_and_says_so():
    api = Replay("stopped_by_user", stop_after=3)  # the task stays RUNNING until StopTask
    runner = run.TaskRun(
        api, _params(task_definition="fixture-stopped-by-user", timeout=30), clock=api.clock, sleep=api.sleep
    )
    result, failure = runner.run()
    assert api.stopped == "mlops.deploy.ecs_run_task: timeout of 30s reached"
    assert result["timed_out"] is True
    assert "did not finish within the timeout of 30s; it was stopped (StopTask)" in failure
    assert result["last_status"] == "STOPPED"
    assert api.now >= 30


def test_check_mode_resolves_and_checks_but_runs_nothing():
    api = Replay("exit_3")
    result, failure = run.TaskRun(api, _params(), check_mode=True, clock=api.clock, sleep=api.sleep).run()
    assert failure is None
    assert result["changed"] is True
    assert result["check_mode"] is True
    assert result["run_task_request"]["taskDefinition"] == api.task_definition["taskDefinitionArn"]
    assert "RunTask" not in api.calls
    assert "DescribeTasks" not in api.calls


def test_wait_false_returns_the_task_at_once():
    api = Replay("success")
    result, failure = run.TaskRun(api, _params(task_definition="fixture-success", wait=False)).run()
    assert failure is None
    assert result["task_arn"]
    assert result["last_status"] == "PROVISIONING"
    assert result["log_stream"] == "success/job/%s" % result["task_id"]
    assert "DescribeTasks" not in api.calls


def test_following_a_task_started_elsewhere_changes_nothing():
    api = Replay("success", lines=["start", "done"])
    api.at = 2
    params = _params(
        task_definition=None, task_arn=api.snapshots[0]["taskArn"], launch_type=None, network_configuration=None
    )
    result, failure = run.TaskRun(api, params, clock=api.clock, sleep=api.sleep).run()
    assert failure is None
    assert result["changed"] is False
    assert result["log_lines"] == ["start", "done"]
    assert "RunTask" not in api.calls


def test_following_refuses_the_options_of_a_new_task():
    api = Replay("success")
    params = _params(task_definition=None, task_arn=api.snapshots[0]["taskArn"], launch_type=None)
    with pytest.raises(et.TaskError, match="task_arn follows a task started elsewhere; network_configuration"):
        run.TaskRun(api, params).run()


def test_the_container_that_failed_first_is_named_first_and_those_stopped_with_it_after():
    folded, _task_definition = final("two_essential_one_fails")
    by_name = {c["name"]: c for c in folded["containers"]}
    by_name["trainer"]["exit_code"] = 137  # killed after its stopTimeout when sidecar exited
    failed, message = et.verdict(folded, "trainer")
    assert failed
    assert (
        message
        == "task %s failed: essential container sidecar exited with code 7; stopped with it: trainer (137)"
        % (folded["task_id"])
    )

"""Following an ECS task's log to its end, two ways, in the same run, on the sandbox's ECS
(real containers, their output shipped to CloudWatch Logs as the awslogs driver does).

(a)  ecs_run_task's follower (the module's own code, ``_ecs_task_run.TaskRun``);
(b)  the users' loop: every 5 s, DescribeTasks, then GetLogEvents until no new event,
     until the task is STOPPED.

Each way runs its own task of the same task definition, both at once: the container prints
``tick <epoch seconds>`` at irregular moments (0.3 to 1.7 s apart) for BENCH_SECONDS
(default 60) and exits 0. The log-follow delay of a line is the time from the moment the
container printed it (its own clock, which is this machine's) until the follower holds it.
API calls are counted client side, one per HTTP request sent (retries included), for each
way's own clients, and divided by the task's run time (startedAt to stoppedAt).

Needs the sandbox (`make sandbox-up`; `make bench` starts it) and the base image
(`make setup`). Prints one line per figure, then the goals.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "collections"))

import boto3  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper  # noqa: E402

from ansible_collections.mlops.deploy.plugins.module_utils._ecs_task_run import (  # noqa: E402
    EcsApi,
    TaskRun,
    argument_spec,
    retry_decorator,
)
from mlops_sandbox import envfile  # noqa: E402
from mlops_sandbox.client import Sandbox  # noqa: E402
from mlops_sandbox.config import Config  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
POLL_INTERVAL = 5.0
GOAL_DELAY = 2.0
BASE_IMAGE = os.environ.get("MLOPS_BASE_IMAGE", "mlops-deploy/debian:bookworm")
REPOSITORY = "mlops-bench/ecs-base"
# Irregular moments, so that neither way's rhythm lines up with the container's.
JOB = (
    'i=0; while [ $i -lt %d ]; do echo "tick $(date +%%s.%%N)"; '
    "sleep $(awk -v s=$i 'BEGIN { srand(s); printf \"%%.2f\", 0.3 + rand() * 1.4 }'); i=$((i + 1)); done"
)


class Counted:
    """boto3 clients whose HTTP requests are counted by operation (``request-created`` is
    emitted once per attempt, so retries count)."""

    def __init__(self, region: str) -> None:
        self.calls: collections.Counter = collections.Counter()
        self.region = region

    def client(self, service: str):
        client = boto3.client(service, region_name=self.region)
        client.meta.events.register("request-created", self._count)
        return client

    def _count(self, event_name: str = "", **_kwargs) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1


class Bench:
    def __init__(self) -> None:
        env = envfile.exports(Config())
        os.environ.update(env)
        self.region = env["AWS_REGION"]
        Sandbox(env["MLOPS_SANDBOX_CONTROL_URL"]).health()  # a clear message when it is not up
        self.ecs = boto3.client("ecs", region_name=self.region)
        self.logs = boto3.client("logs", region_name=self.region)
        self.run_id = uuid.uuid4().hex[:6]
        self.cluster = f"mlops-bench-follow-{self.run_id}"
        self.group = f"/mlops/bench/ecs-follow/{self.run_id}"
        self.subnet = ""
        self.task_definition = ""

    # -- the task ------------------------------------------------------------------------------

    def image(self) -> str:
        """The base image in the sandbox's ECR (pushed with a token from GetAuthorizationToken)."""
        ecr = boto3.client("ecr", region_name=self.region)
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=REPOSITORY)
        data = ecr.get_authorization_token()["authorizationData"][0]
        user, _sep, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        host = data["proxyEndpoint"].split("://", 1)[-1]
        image = f"{host}/{REPOSITORY}:bench"
        with tempfile.TemporaryDirectory() as config:
            docker = ["docker", "--config", config]
            subprocess.run(
                [*docker, "login", "-u", user, "--password-stdin", host], input=password, text=True,
                check=True, capture_output=True,
            )  # fmt: skip
            subprocess.run([*docker, "tag", BASE_IMAGE, image], check=True, capture_output=True)
            subprocess.run([*docker, "push", image], check=True, capture_output=True)
        return image

    def set_up(self) -> None:
        self.ecs.create_cluster(clusterName=self.cluster)
        self.logs.create_log_group(logGroupName=self.group)
        self.subnet = boto3.client("ec2", region_name=self.region).describe_subnets()["Subnets"][0]["SubnetId"]
        self.task_definition = self.ecs.register_task_definition(
            family=f"{self.cluster}-ticks", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu="256", memory="512",
            containerDefinitions=[{
                "name": "job", "image": self.image(), "essential": True,
                "command": ["sh", "-c", JOB % SECONDS],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": self.group, "awslogs-region": self.region, "awslogs-stream-prefix": "bench",
                }},
            }],
        )["taskDefinition"]["taskDefinitionArn"]  # fmt: skip

    def run_time(self, task_arn: str) -> float:
        task = self.ecs.describe_tasks(cluster=self.cluster, tasks=[task_arn])["tasks"][0]
        return (task["stoppedAt"] - task["startedAt"]).total_seconds()

    # -- (a) the module --------------------------------------------------------------------------

    def module(self, out: dict) -> None:
        counted = Counted(self.region)
        retry = retry_decorator()
        ecs, logs = counted.client("ecs"), counted.client("logs")
        api = EcsApi(
            RetryingBotoClientWrapper(ecs, retry), lambda _region: RetryingBotoClientWrapper(logs, retry), self.region
        )
        params = {name: spec.get("default") for name, spec in argument_spec().items()}
        params.update(
            cluster=self.cluster,
            task_definition=self.task_definition,
            launch_type="FARGATE",
            network_configuration={"subnets": [self.subnet], "security_groups": [], "assign_public_ip": False},
            timeout=SECONDS * 5,
        )
        delays: list[float] = []

        def report(line: str) -> None:
            if line.startswith("[job] tick "):
                delays.append(time.time() - float(line.split()[-1]))

        result, failure = TaskRun(api, params, report=report).run()
        if failure:
            raise RuntimeError(f"(a) {failure}")
        out.update(task_arn=result["task_arn"], delays=delays, calls=dict(counted.calls))

    # -- (b) the 5-second poller -----------------------------------------------------------------

    def poller(self, out: dict) -> None:
        counted = Counted(self.region)
        ecs, logs = counted.client("ecs"), counted.client("logs")
        task_arn = ecs.run_task(
            cluster=self.cluster, taskDefinition=self.task_definition, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": [self.subnet]}},
        )["tasks"][0]["taskArn"]  # fmt: skip
        stream = f"bench/job/{task_arn.rsplit('/', 1)[-1]}"
        delays: list[float] = []
        token = None
        while True:
            status = ecs.describe_tasks(cluster=self.cluster, tasks=[task_arn])["tasks"][0]["lastStatus"]
            while True:
                params = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
                if token:
                    params["nextToken"] = token
                try:
                    answer = logs.get_log_events(**params)
                except logs.exceptions.ResourceNotFoundException:
                    break
                now = time.time()
                delays += [
                    now - float(e["message"].split()[-1]) for e in answer["events"] if e["message"].startswith("tick ")
                ]
                if answer["nextForwardToken"] == token or not answer["events"]:
                    token = answer["nextForwardToken"]
                    break
                token = answer["nextForwardToken"]
            if status == "STOPPED":
                break
            time.sleep(POLL_INTERVAL)
        out.update(task_arn=task_arn, delays=delays, calls=dict(counted.calls))


def report(label: str, figures: dict, run_time: float) -> float:
    delays = sorted(figures["delays"])
    total = sum(figures["calls"].values())
    per_minute = total / (run_time / 60.0)
    calls = ", ".join("%s %d" % item for item in sorted(figures["calls"].items()))
    print(
        "%s: %d lines, log-follow delay median %.2f s, p90 %.2f s, max %.2f s"
        % (label, len(delays), statistics.median(delays), delays[int(len(delays) * 0.9) - 1], delays[-1]),
        flush=True,
    )
    print(
        "%s: %d API calls (%s) for %.1f s of task run time: %.1f calls per minute"
        % (label, total, calls, run_time, per_minute),
        flush=True,
    )
    return per_minute


def main() -> int:
    bench = Bench()
    bench.set_up()
    print(f"ecs follow: two tasks of {SECONDS} s of irregular ticks on cluster {bench.cluster}, at once", flush=True)
    module, poller = {}, {}
    threads = [
        threading.Thread(target=bench.module, args=(module,)),
        threading.Thread(target=bench.poller, args=(poller,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if not module.get("delays") or not poller.get("delays"):
        print(f"a follower saw no line: (a) {module.get('delays')}, (b) {poller.get('delays')}")
        return 1
    a = report("(a) ecs_run_task", module, bench.run_time(module["task_arn"]))
    b = report("(b) 5 s DescribeTasks+GetLogEvents poller", poller, bench.run_time(poller["task_arn"]))
    median_a, median_b = statistics.median(module["delays"]), statistics.median(poller["delays"])
    print(
        "ratio: (b)/(a) log-follow delay median %.1fx; (a)/(b) API calls per minute %.2fx"
        % (median_b / median_a, a / b)
    )
    ok = median_a < GOAL_DELAY
    print(
        "goal: (a) log-follow delay median < %.0f s: %s (%.2f s)" % (GOAL_DELAY, "met" if ok else "NOT met", median_a)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Following one SSM command on 1,000 instances to its end, three ways, in the same run.

(a)  the users' current loop: GetCommandInvocation for each unfinished instance, every 10 s;
(b)  botocore's ``command_executed`` waiter (GetCommandInvocation every 5 s, 20 tries),
     one per instance, (b1) one instance after the other, (b2) all at once in threads;
(c)  ssm_run_playbook's follower (the module's own code, ``_ssm_rollout.Rollout``), run
     three times for a median detection delay.

The fleet: 1,000 *simulated* sandbox instances (no containers; the sandbox's SSM service
plays their agent). Each invocation ends a random time after it starts, drawn uniformly
between 5 and 30 s: long enough for the 10 s and 5 s loops to poll several times, short
enough for the whole run to stay near four minutes. Every way follows its own command of
the same kind: AWS-ApplyAnsiblePlaybooks sent to the fleet's tag with MaxConcurrency 100%.

API calls are counted by the sandbox, per action, server side (throttled calls and
retries included). The detection delay is the time between the end of the last
invocation (its ResponseFinishDateTime, on the sandbox's clock, which is this machine's)
and the moment the caller holds every instance's final status.

Needs the sandbox (`make sandbox-up`; `make bench` starts it). Prints one line per figure.
"""

from __future__ import annotations

import concurrent.futures
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "collections"))

import boto3  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper  # noqa: E402
from botocore.config import Config as BotoConfig  # noqa: E402
from botocore.exceptions import ClientError, WaiterError  # noqa: E402

from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import SsmApi, retry_decorator  # noqa: E402
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_options import RolloutOptions  # noqa: E402
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_rollout import Rollout  # noqa: E402
from mlops_sandbox import envfile  # noqa: E402
from mlops_sandbox.client import Sandbox, SandboxControlError  # noqa: E402
from mlops_sandbox.config import Config  # noqa: E402

# The figures the README and the issue quote come from these defaults; the environment
# may shrink them while working on the benchmark itself.
FLEET = int(os.environ.get("BENCH_FLEET", "1000"))
LOW, HIGH = float(os.environ.get("BENCH_LOW", "5")), float(os.environ.get("BENCH_HIGH", "30"))
USER_LOOP_INTERVAL = 10.0
C_RUNS = 3
GOAL_RATIO = 50.0
GOAL_DELAY = 1.0
RUNNING = ("Pending", "InProgress", "Delayed", "Cancelling")
FOLLOW_ACTIONS = ("ListCommands", "ListCommandInvocations", "GetCommandInvocation")


class Bench:
    def __init__(self) -> None:
        # The settings `make sandbox-up` writes to .sandbox/env, from the same source.
        env = envfile.exports(Config())
        os.environ.update(env)
        self.region = env["AWS_REGION"]
        self.sandbox = Sandbox(env["MLOPS_SANDBOX_CONTROL_URL"])
        self.sandbox.health()  # a clear message when the sandbox is not up
        # Room for (b2)'s threads; the other ways use one connection at a time.
        config = BotoConfig(max_pool_connections=200, retries={"max_attempts": 10, "mode": "standard"})
        self.ssm = boto3.client("ssm", region_name=self.region, config=config)
        self.ec2 = boto3.client("ec2", region_name=self.region)
        self.tag = "bench-follow-" + uuid.uuid4().hex[:6]
        self.ids: list[str] = []

    # -- the fleet and the command ---------------------------------------------------------

    def parameters(self) -> dict:
        return {
            "SourceType": ["S3"],
            "SourceInfo": ['{"path": "https://bench.s3.%s.amazonaws.com/deploy.yml"}' % self.region],
            "InstallDependencies": ["False"],
            "PlaybookFile": ["deploy.yml"],
            "ExtraVariables": ["SSM=True"],
            "Check": ["False"],
            "Verbose": ["-v"],
        }

    def send(self) -> str:
        command = self.ssm.send_command(
            DocumentName="AWS-ApplyAnsiblePlaybooks",
            Targets=[{"Key": "tag:Name", "Values": [self.tag]}],
            Parameters=self.parameters(),
            MaxConcurrency="100%",
            MaxErrors="100%",
        )["Command"]
        return command["CommandId"]

    def last_end(self, command_id: str) -> tuple[float, dict]:
        """When the last invocation ended, and the statuses (read after the fact, not counted)."""
        ends, statuses = [], {}
        for page in self.ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id, Details=True):
            for invocation in page["CommandInvocations"]:
                statuses[invocation["Status"]] = statuses.get(invocation["Status"], 0) + 1
                ends += [p["ResponseFinishDateTime"].timestamp() for p in invocation["CommandPlugins"]]
        return max(ends), statuses

    def calls(self) -> dict:
        return self.sandbox.calls()["calls"]

    # -- (a) --------------------------------------------------------------------------------

    def user_loop(self, command_id: str) -> dict:
        pending, seen = list(self.ids), {}
        while pending:
            still = []
            for instance_id in pending:
                try:
                    status = self.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)["Status"]
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "InvocationDoesNotExist":
                        raise
                    status = "Pending"
                if status in RUNNING:
                    still.append(instance_id)
                else:
                    seen[instance_id] = status
            pending = still
            if pending:
                time.sleep(USER_LOOP_INTERVAL)
        return seen

    # -- (b) --------------------------------------------------------------------------------

    def wait_one(self, command_id: str, instance_id: str) -> str:
        try:
            self.ssm.get_waiter("command_executed").wait(CommandId=command_id, InstanceId=instance_id)
            return "Success"
        except WaiterError as exc:
            return (exc.last_response or {}).get("Status", "WaiterError")

    def waiters_in_sequence(self, command_id: str) -> dict:
        return {instance_id: self.wait_one(command_id, instance_id) for instance_id in self.ids}

    def waiters_in_threads(self, command_id: str) -> dict:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.ids)) as pool:
            futures = {iid: pool.submit(self.wait_one, command_id, iid) for iid in self.ids}
            return {iid: future.result() for iid, future in futures.items()}

    # -- (c) --------------------------------------------------------------------------------

    def module(self) -> tuple[str, dict]:
        retry = retry_decorator()
        api = SsmApi(
            RetryingBotoClientWrapper(self.ssm, retry),
            RetryingBotoClientWrapper(self.ec2, retry),
            None,
            self.region,
            retry=retry,
        )
        options = RolloutOptions.defaults(
            targets=["tag:Name=" + self.tag],
            playbook_url="s3://bench/deploy.yml",
            max_concurrency="100%",
            max_errors="100%",
        )
        result, failure = Rollout(api, options).run()
        if failure:
            raise RuntimeError(failure)
        return result["command_ids"][0], {i["instance_id"]: i["status"] for i in result["instances"]}

    # -- a run --------------------------------------------------------------------------------

    def measure(self, label: str, follow) -> dict:
        """Send (except for (c), which sends itself), follow, and read the figures."""
        if label.startswith("(c)"):
            self.sandbox.reset_calls()
            command_id, seen = follow()
        else:
            command_id = self.send()
            self.sandbox.reset_calls()
            seen = follow(command_id)
        known = time.time()
        calls = self.calls()
        ended, statuses = self.last_end(command_id)
        if len(seen) != len(self.ids) or any(s != "Success" for s in seen.values()):
            raise RuntimeError("%s did not see every instance succeed: %s" % (label, statuses))
        follow_calls = sum(calls.get(a, 0) for a in FOLLOW_ACTIONS)
        other = {a: n for a, n in calls.items() if a not in FOLLOW_ACTIONS}
        return {"calls": follow_calls, "by_action": calls, "other": other, "delay": known - ended}


def report(label: str, figures: dict) -> None:
    actions = ", ".join("%s %d" % (a, n) for a, n in sorted(figures["by_action"].items()) if a in FOLLOW_ACTIONS)
    print("%s: API calls to follow: %d (%s)" % (label, figures["calls"], actions), flush=True)
    if figures["other"]:
        other = ", ".join("%s %d" % item for item in sorted(figures["other"].items()))
        print("%s: API calls before following (pre-flight, send): %s" % (label, other), flush=True)
    print("%s: detection delay after the last invocation ended: %.2f s" % (label, figures["delay"]), flush=True)


def main() -> int:
    try:
        bench = Bench()
    except SandboxControlError as exc:
        print("bench_ssm_follow: %s" % exc, file=sys.stderr)
        return 1
    print(
        "bench_ssm_follow: %d simulated instances; each invocation ends %g-%g s (uniform) after it starts; "
        "AWS-ApplyAnsiblePlaybooks to tag:Name=%s, MaxConcurrency 100%%" % (FLEET, LOW, HIGH, bench.tag),
        flush=True,
    )
    started = time.monotonic()
    fleet = bench.sandbox.add_instances(
        "simulated", FLEET, bench.tag, "bench", duration={"kind": "uniform", "low": LOW, "high": HIGH}, seed=42
    )
    bench.ids = [item["instance_id"] for item in fleet]
    try:
        a = bench.measure("(a)", bench.user_loop)
        report("(a) GetCommandInvocation per instance every 10 s", a)
        b1 = bench.measure("(b1)", bench.waiters_in_sequence)
        report("(b1) command_executed waiter per instance, one after the other", b1)
        b2 = bench.measure("(b2)", bench.waiters_in_threads)
        report("(b2) command_executed waiter per instance, all in parallel threads", b2)
        runs = []
        for number in range(1, C_RUNS + 1):
            c = bench.measure("(c)", bench.module)
            report("(c) ssm_run_playbook follower, run %d/%d" % (number, C_RUNS), c)
            runs.append(c)
    finally:
        bench.sandbox.remove_instances(name=bench.tag, env="bench")
    c_calls = statistics.median(r["calls"] for r in runs)
    c_delay = statistics.median(r["delay"] for r in runs)
    print("(c) median over %d runs: API calls %d, detection delay %.2f s" % (C_RUNS, c_calls, c_delay))
    for label, figures in (("(a)", a), ("(b1)", b1), ("(b2)", b2)):
        ratio = figures["calls"] / c_calls
        print(
            "ratio API calls %s/(c): %.1fx (goal >= %gx: %s)"
            % (label, ratio, GOAL_RATIO, "met" if ratio >= GOAL_RATIO else "NOT met")
        )
    for label, figures in (("(a)", a), ("(b1)", b1), ("(b2)", b2)):
        print("ratio detection delay %s/(c): %.1fx" % (label, figures["delay"] / c_delay))
    print(
        "(c) median detection delay %.2f s (goal < %g s: %s)"
        % (c_delay, GOAL_DELAY, "met" if c_delay < GOAL_DELAY else "NOT met")
    )
    print("bench_ssm_follow: done in %.0f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())

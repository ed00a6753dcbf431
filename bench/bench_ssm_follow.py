"""Following one SSM command on 1,000 instances to its end, in the same run, with AWS's
per-call latency on (the sandbox's latency setting, 20-80 ms a call):

(a)  the users' current loop: GetCommandInvocation for each unfinished instance, every 10 s;
(b)  botocore's ``command_executed`` waiter (GetCommandInvocation every 5 s, 20 tries),
     one per instance, (b1) one instance after the other, (b2) all at once in threads;
(c)  ssm_run_playbook's rollout (the module's own code, ``_ssm_rollout.Rollout``: tag
     resolution, pre-flight, send, follow with its host watcher, final listing).

Each way runs ``BENCH_RUNS`` times (3); the figures are medians. Two duration mixes of
*simulated* sandbox instances (no containers; the sandbox's SSM service plays their
agent): ``uniform``, each invocation ending 5-30 s after it starts; ``stragglers``, most
ending in 5-30 s and a few (``BENCH_STRAGGLERS``, 20) after minutes (120-240 s). The
waiters of (b) give up after 100 s, so (b) runs on the uniform mix only.

Every call counts, server side (throttled calls and retries included): each SSM action
(SendCommand and the module's pre-flight DescribeInstanceInformation too) from the SSM
service's counters, the EC2 calls (tag resolution, the watcher) from the sandbox's call
log. The floor is what following cannot do without: one ListCommandInvocations page per 50
instances (their final statuses) plus one call per poll of the module. The detection
delay is the time between the end of the last invocation (its ResponseFinishDateTime, on
the sandbox's clock, which is this machine's) and the moment the caller holds every
instance's final status.

Needs the sandbox (`make sandbox-up`; `make bench` starts it) and nobody else's tests on
it (its counters and settings are shared). Prints one line per figure.
"""

from __future__ import annotations

import concurrent.futures
import math
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
STRAGGLERS = int(os.environ.get("BENCH_STRAGGLERS", "20"))
STRAGGLER_LOW = float(os.environ.get("BENCH_STRAGGLER_LOW", "120"))
STRAGGLER_HIGH = float(os.environ.get("BENCH_STRAGGLER_HIGH", "240"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MIXES = os.environ.get("BENCH_MIXES", "uniform,stragglers").split(",")
WAYS = os.environ.get("BENCH_WAYS", "a,b1,b2,c").split(",")  # (c) always runs
LATENCY = [0.02, 0.08]  # seconds a call, as a region answers
USER_LOOP_INTERVAL = 10.0
PAGE = 50
GOAL_RATIO = 50.0
GOAL_FLOOR = 1.5
GOAL_DELAY = 1.0
RUNNING = ("Pending", "InProgress", "Delayed", "Cancelling")


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
        self.polls = 0  # the module's polls in its last run

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
        rollout = Rollout(api, options)
        result, failure = rollout.run()
        if failure:
            raise RuntimeError(failure)
        self.polls = rollout.follower.polls
        return result["command_ids"][0], {i["instance_id"]: i["status"] for i in result["instances"]}

    # -- a run --------------------------------------------------------------------------------

    def measure(self, label: str, follow) -> dict:
        """Send (except for (c), which sends itself), follow, and read the figures: every
        call from the counters' reset on, the send included."""
        self.sandbox.reset_calls()
        since = time.time()
        self.polls = 0
        if label.startswith("(c)"):
            command_id, seen = follow()
        else:
            command_id = self.send()
            seen = follow(command_id)
        known = time.time()
        calls = dict(self.calls())
        for entry in self.sandbox.call_log(since=since):
            if entry.get("service") == "ec2":
                calls["ec2:" + entry["operation"]] = calls.get("ec2:" + entry["operation"], 0) + 1
        ended, statuses = self.last_end(command_id)
        if len(seen) != len(self.ids) or any(s != "Success" for s in seen.values()):
            raise RuntimeError("%s did not see every instance succeed: %s" % (label, statuses))
        return {"calls": sum(calls.values()), "by_action": calls, "delay": known - ended, "polls": self.polls}


def report(label: str, figures: dict) -> None:
    actions = ", ".join("%s %d" % item for item in sorted(figures["by_action"].items()))
    print("%s: API calls %d (%s)" % (label, figures["calls"], actions), flush=True)
    print("%s: detection delay after the last invocation ended: %.2f s" % (label, figures["delay"]), flush=True)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def run_mix(bench: Bench, mix: str) -> None:
    """One fleet, every way RUNS times, the medians and the ratios."""
    if mix == "uniform":
        groups = [(FLEET, LOW, HIGH)]
        shape = "each invocation ends %g-%g s (uniform) after it starts" % (LOW, HIGH)
    else:
        groups = [(FLEET - STRAGGLERS, LOW, HIGH), (STRAGGLERS, STRAGGLER_LOW, STRAGGLER_HIGH)]
        shape = "%d end in %g-%g s, %d stragglers in %g-%g s" % (
            FLEET - STRAGGLERS,
            LOW,
            HIGH,
            STRAGGLERS,
            STRAGGLER_LOW,
            STRAGGLER_HIGH,
        )
    bench.tag = "bench-follow-" + uuid.uuid4().hex[:6]
    print("== mix %s: %d simulated instances; %s; tag:Name=%s" % (mix, FLEET, shape, bench.tag), flush=True)
    bench.ids = []
    for seed, (count, low, high) in enumerate(groups, start=42):
        fleet = bench.sandbox.add_instances(
            "simulated", count, bench.tag, "bench", duration={"kind": "uniform", "low": low, "high": high}, seed=seed
        )
        bench.ids += [item["instance_id"] for item in fleet]
    ways = [("(a)", "GetCommandInvocation per instance every 10 s", bench.user_loop)]
    if mix == "uniform":
        ways += [
            ("(b1)", "command_executed waiter per instance, one after the other", bench.waiters_in_sequence),
            ("(b2)", "command_executed waiter per instance, all in parallel threads", bench.waiters_in_threads),
        ]
    ways = [way for way in ways if way[0].strip("()") in WAYS]
    ways.append(("(c)", "ssm_run_playbook rollout", bench.module))
    medians = {}
    try:
        for label, title, follow in ways:
            runs = []
            for number in range(1, RUNS + 1):
                figures = bench.measure(label, follow)
                report("%s %s %s, run %d/%d" % (mix, label, title, number, RUNS), figures)
                runs.append(figures)
            medians[label] = {
                "calls": median(runs, "calls"),
                "delay": median(runs, "delay"),
                "polls": median(runs, "polls"),
            }
            print("%s %s median of %d runs: API calls %d, detection delay %.2f s"
                  % (mix, label, RUNS, medians[label]["calls"], medians[label]["delay"]), flush=True)  # fmt: skip
    finally:
        bench.sandbox.remove_instances(name=bench.tag, env="bench")
    c = medians["(c)"]
    floor = math.ceil(FLEET / PAGE) + c["polls"]
    verdict = "met" if c["calls"] / floor <= GOAL_FLOOR else "NOT met"
    print("%s floor: %d ListCommandInvocations pages (50 instances each) + %d polls = %d calls; "
          "(c) %d = %.2fx the floor (goal <= %gx: %s)"
          % (mix, math.ceil(FLEET / PAGE), c["polls"], floor, c["calls"], c["calls"] / floor, GOAL_FLOOR,
             verdict))  # fmt: skip
    for label, figures in medians.items():
        if label == "(c)":
            continue
        ratio = figures["calls"] / c["calls"]
        print("%s ratio API calls %s/(c): %.1fx (goal >= %gx: %s); detection delay %s/(c): %.1fx"
              % (mix, label, ratio, GOAL_RATIO, "met" if ratio >= GOAL_RATIO else "NOT met", label,
                 figures["delay"] / c["delay"]))  # fmt: skip
    print("%s (c) median detection delay %.2f s (goal < %g s: %s)"
          % (mix, c["delay"], GOAL_DELAY, "met" if c["delay"] < GOAL_DELAY else "NOT met"), flush=True)  # fmt: skip


def main() -> int:
    try:
        bench = Bench()
    except SandboxControlError as exc:
        print("bench_ssm_follow: %s" % exc, file=sys.stderr)
        return 1
    print("bench_ssm_follow: AWS-ApplyAnsiblePlaybooks to a tag, MaxConcurrency 100%%; latency %g-%g s a call; "
          "%d runs of each way" % (LATENCY[0], LATENCY[1], RUNS), flush=True)  # fmt: skip
    started = time.monotonic()
    with bench.sandbox.timing(latency=LATENCY):
        for mix in MIXES:
            run_mix(bench, mix)
    print("bench_ssm_follow: done in %.0f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The release flow end to end, as CI runs it: `ansible-playbook -i inventories/local
playbooks/site.yml` against the sandbox (3 full instances, env `local`), SSM really
running the bundle's deploy.yml inside each instance, the Titanic model API pulled from
the sandbox's ECR. The scenarios build on each other, in file order:

1. a full release reaches the 3 instances and the endpoint answers on each;
2. the same release again changes nothing and restarts no container;
3. an image whose health check fails: the canary fails, the rollout stops, the canary is
   back on the previous release, the other instances never changed, the output shows the
   failing container's logs;
4. a tampered bundle in S3 is refused on the instance, nothing changes;
5. two runs at once: the second is refused, naming the holder of the lock;
6. an offline instance is caught before anything is sent, and named;
7. an instance killed as its deploy starts (still Online at pre-flight): the release fails
   naming it, in bounded time (a minute or two, not the rollout's timeout); the others are
   put back on the first release;
8. a second release, then playbooks/rollback.yml, both under a constant load on every
   instance with no failed request: back on the first; the history shows both;
9. the endpoints' tests expecting another answer fail, naming each URL;
10. the IAM proof: all of the above ran as the real identities -- CI as the CI deployer role
    (OIDC web identity, as a GitHub job of environment `local`), the instances as their
    instance profile role -- and every call each made is allowed by its shipped policy,
    every action each policy allows was used (iam_proof.py).

The SSM service keeps AWS's ConnectionLost delay (600 s) by default; the scenarios that
need an agent to go ConnectionLost set it shorter for their run (``Sandbox.timing``).
Each failure is asserted as a person reads it: one block of a few lines (the failing
task's message), the container's own log line as a line of its own, no output line over
300 characters without -v; with -v the full results are there too.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

from ansible_collections.mlops.deploy.plugins.module_utils._ssm_run import parse_recap
from mlops_sandbox import calls
from mlops_sandbox.client import Sandbox
from mlops_sandbox.config import Config

from .conftest import BIN, ROOT, sandbox_env
from .deploy_support import RegistryClient, ecr_credentials, ensure_repository
from .iam_proof import IDENTITIES, attached, ci_deployer, client_as, lint, prove
from .loadgen import ConstantLoad, summarize

INVENTORY = ROOT / "inventories" / "local"
SITE = ROOT / "playbooks" / "site.yml"
ROLLBACK = ROOT / "playbooks" / "rollback.yml"
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
TITANIC = ROOT / "demo" / "titanic"
# Each run's output and task results (JSON lines, tests/integration/callback_plugins),
# kept for a look after the tests and asserted on.
RECORDS = ROOT / ".build" / "test-logs" / "release-flow"
REPOSITORY = "titanic-api"
JACK = {"Pclass": 3, "Sex": "male", "Age": 22, "SibSp": 1, "Parch": 0, "Fare": 7.25, "Embarked": "S"}
pytestmark = pytest.mark.timeout(1800)
# The local inventory's rollout, with the running hosts looked at every 15 s.
FAST_CHECKS = {
    **yaml.safe_load((INVENTORY / "group_vars" / "all" / "release.yml").read_text())["release_rollout"],
    "host_check_interval": 15,
}


class Fleet:
    """The environment under test: how to run the release playbooks and look at the instances."""

    def __init__(self, env: dict[str, str], workdir: Path, aws):
        self.env = env
        self.workdir = workdir
        self.ssm = aws("ssm")
        self.ec2 = aws("ec2")
        self.s3 = aws("s3")
        self.sandbox = env["MLOPS_SANDBOX_NAME"]
        self.runs = 0
        shutil.rmtree(RECORDS, ignore_errors=True)
        RECORDS.mkdir(parents=True)
        reservations = self.ec2.describe_instances(
            Filters=[
                {"Name": "tag:env", "Values": ["local"]},
                {"Name": "tag:Name", "Values": ["model-server"]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )["Reservations"]
        found = [i for r in reservations for i in r["Instances"]]
        self.ips = {i["InstanceId"]: i["PrivateIpAddress"] for i in found}
        self.instances = sorted(self.ips)

    def play(self, playbook: Path, *extra: str, env: dict | None = None, wait: bool = True):
        """ansible-playbook with the sandbox's settings; the output and task results are
        recorded under RECORDS (``result.record``: their path without suffix)."""
        self.runs += 1
        test = os.environ.get("PYTEST_CURRENT_TEST", "run").split("::")[-1].split(" ")[0]
        record = RECORDS / f"{self.runs:02d}-{test}{'-v' if '-v' in extra else ''}"
        argv = [
            str(BIN / "ansible-playbook"), "-i", str(INVENTORY), str(playbook),
            "-e", f"release_workdir={self.workdir}", *extra,
        ]  # fmt: skip
        full_env = {
            **os.environ,
            **self.env,
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
            "ANSIBLE_CONFIG": str(ROOT / "tests" / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
            "ANSIBLE_CALLBACKS_ENABLED": "record_results",
            "MLOPS_RECORD_RESULTS": f"{record}.jsonl",
            **(env or {}),
        }
        if not wait:
            return subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        result = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=1500, check=False)
        Path(f"{record}.out").write_text(output(result))
        result.record = record
        return result

    def container(self, instance: str) -> str:
        return f"mlops-sb-{self.sandbox}-{instance}"

    def api_container(self, instance: str) -> str | None:
        """ID and start time of the endpoint's running container(s) inside the instance
        (whichever colour is live under blue/green), or None when none runs."""
        out = subprocess.run(
            ["docker", "exec", self.container(instance), "sh", "-c",
             "docker ps -q --filter label=com.docker.compose.service=api --filter name=titanic"
             " | xargs -r docker inspect --format '{{.Name}} {{.Id}} {{.State.StartedAt}}'"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        lines = sorted(line for line in out.stdout.splitlines() if line.strip())
        return "\n".join(lines) if out.returncode == 0 and lines else None

    def proxy_log(self, instance: str, lines: int = 40) -> str:
        """The host proxy's last log lines inside the instance (HAProxy: its server state
        changes and one line per request, with the server and termination state)."""
        out = subprocess.run(
            ["docker", "exec", self.container(instance), "docker", "logs", "--tail", str(lines), "mlops-proxy"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return (out.stdout + out.stderr).strip()

    def answer(self, instance: str, path: str = "/health", body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.ips[instance]}:8080{path}", data=data)
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - a sandbox address
            return json.loads(resp.read())

    def commands_for(self, instance: str) -> int:
        # Every page: a sandbox that served earlier runs has more than one page (50) of them.
        pages = self.ssm.get_paginator("list_commands").paginate(InstanceId=instance)
        return sum(len(page["Commands"]) for page in pages)

    def history(self) -> list[dict]:
        name = "/mlops/local/releases/titanic"
        pages = self.ssm.get_paginator("get_parameter_history").paginate(Name=name)
        return [json.loads(p["Value"]) for page in pages for p in page["Parameters"]]


def output(result) -> str:
    return result.stdout + result.stderr


def assert_ok(result) -> None:
    assert result.returncode == 0, output(result)[-8000:]


LINE_MAX = 300  # characters of any output line without -v
ERROR = "[ERROR]: Task failed: Action failed: "


def failure_block(result, most: int) -> list[str]:
    """What a person reads of a failed run: the one failing task's report, from its
    [ERROR] line to Ansible's "Origin:" pointer, at most ``most`` lines; and no output
    line longer than LINE_MAX, no task result dumped in full before it."""
    text = output(result)
    assert result.returncode != 0, text
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("[ERROR]: ")]
    assert len(starts) == 1, f"one failing task tells the failure, not {len(starts)}:\n{text[-8000:]}"
    start = starts[0]
    assert lines[start].startswith(ERROR), lines[start]
    end = next(n for n in range(start, len(lines)) if lines[n].startswith("Origin: "))
    block = [lines[start][len(ERROR) :], *lines[start + 1 : end]]
    assert len(block) <= most, "\n".join(block)
    longest = max(lines, key=len)
    assert len(longest) <= LINE_MAX, f"a line of {len(longest)} characters: {longest[:400]}"
    for key in ("stdout_tail:", "output_lines:", "command_ids:"):  # the rollout's result, shown only with -v
        assert key not in text, f"{key} is in the output without -v:\n{text[-8000:]}"
    return block


def build_variant(client: RegistryClient, tag: str, version: str | None, broken: bool, work: Path) -> str:
    """The demo's model API image with a model of ``version`` (retrained) or a model file
    that does not load (``broken``: the API answers /health with 503), pushed as ``tag``."""
    context = work / f"context-{tag}"
    shutil.copytree(TITANIC, context)
    model = context / "model" / "model.json"
    if broken:
        model.write_text('{"version": "broken"}\n')
    elif version:
        subprocess.run(
            [str(BIN / "python"), str(context / "train.py"), "--version", version, "--out", str(model)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    uri = client.uri(tag, REPOSITORY)
    client.docker("build", "--quiet", "--tag", uri, str(context))
    return client.push(uri, tag, REPOSITORY)


@pytest.fixture(scope="module")
def fleet(aws, tmp_path_factory):
    env = sandbox_env()
    work = tmp_path_factory.mktemp("release")
    fleet = Fleet(env, work / "build", aws)
    assert len(fleet.instances) == 3, f"the sandbox should run 3 model servers tagged env=local: {fleet.instances}"
    fleet.started = time.time()
    resources = fleet.play(ROOT / "playbooks" / "provision.yml")
    assert_ok(resources)
    creds = ci_deployer(aws)
    # From here on CI is the CI deployer: every play and every push.
    fleet.env = {**env, "AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                 "AWS_SESSION_TOKEN": creds["SessionToken"]}  # fmt: skip
    fleet.ci_key = creds["AccessKeyId"]
    ecr = client_as(creds, env, "ecr")
    ensure_repository(aws("ecr"), REPOSITORY)  # provision.yml made it: no call of CI's
    client = RegistryClient(work / "docker", ecr_credentials(ecr))
    client.login()
    run = uuid.uuid4().hex[:6]
    fleet.tags = {
        "v1": f"test-{run}-v1",
        "v2": f"test-{run}-v2",
        "broken": f"test-{run}-broken",
    }
    fleet.digests = {
        "v1": build_variant(client, fleet.tags["v1"], None, False, work),
        "v2": build_variant(client, fleet.tags["v2"], f"titanic-logreg-2-{run}", False, work),
        "broken": build_variant(client, fleet.tags["broken"], None, True, work),
    }
    fleet.v2_version = f"titanic-logreg-2-{run}"
    # Start from a fleet without the endpoint, as a first release finds it.
    for instance in fleet.instances:
        subprocess.run(
            ["docker", "exec", fleet.container(instance), "sh", "-c", CLEAR_ENDPOINT],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    return fleet


# Every container of the endpoint (each colour under blue/green), as a first release finds none.
CLEAR_ENDPOINT = "docker ps -aq --filter name=titanic | xargs -r docker rm -f >/dev/null 2>&1; true"


def tag(fleet, variant: str) -> str:
    return f"titanic_image_tag={fleet.tags[variant]}"


def test_1_full_release_reaches_every_instance(fleet):
    result = fleet.play(SITE, "-e", tag(fleet, "v1"))
    assert_ok(result)
    text = output(result)
    for instance in fleet.instances:
        assert fleet.answer(instance)["model_version"] == "titanic-logreg-1"
        assert fleet.answer(instance, "/predict", JACK)["prediction"] == 0
        assert f"{instance}:\n" in text  # each instance's summary line, shown by the controller
    assert "changed on " in text  # the summary: the release changed the instances
    record = fleet.history()[-1]
    assert record["result"] == "success"
    assert record["digests"]["api"].endswith(fleet.digests["v1"])
    fleet.first_release = record["release_id"]


def test_2_same_release_again_changes_nothing(fleet):
    before = {i: fleet.api_container(i) for i in fleet.instances}
    result = fleet.play(SITE, "-e", tag(fleet, "v1"))
    assert_ok(result)
    assert "nothing changed on any of the 3 instance(s)" in output(result)
    # The play recap too: taking and releasing the deploy lock is no change of the environment.
    recap = parse_recap(result.stdout)
    assert recap, result.stdout[-3000:]
    assert {host: counts["changed"] for host, counts in recap.items()} == dict.fromkeys(recap, 0), result.stdout[-6000:]
    assert {i: fleet.api_container(i) for i in fleet.instances} == before
    assert fleet.history()[-1]["release_id"] == fleet.first_release


def test_3_unhealthy_image_stops_at_the_canary_and_rolls_it_back(fleet):
    before = {i: fleet.api_container(i) for i in fleet.instances}
    assert all(before.values()), f"the first release should be serving everywhere: {before}"
    commands = {i: fleet.commands_for(i) for i in fleet.instances}
    result = fleet.play(SITE, "-e", tag(fleet, "broken"))
    block = failure_block(result, 15)
    assert re.match(
        r"^Release r-[0-9a-f]{12} of titanic failed in local at batch 1/3 \(the canary\): 1 of 1 instance", block[0]
    )
    canary_line = next(line for line in block if line.startswith("  i-"))
    # Blue/green (the default): the new colour failed its health check and never got traffic.
    assert re.search(
        r", deploy of titanic: deploy of titanic-(blue|green) unhealthy: "
        r"titanic-(blue|green)-api-1 \(api\) is unhealthy",
        canary_line,
    ), canary_line
    # The failing container's own log line (through SSM and CloudWatch), as a line of its own.
    assert any(
        re.fullmatch(r'\s+\{"t": [0-9.]+, "error": "model /app/model/model.json did not load: \'features\'"\}', line)
        for line in block
    ), "\n".join(block)
    sent = [i for i in fleet.instances if fleet.commands_for(i) > commands[i]]
    assert len(sent) == 1, f"only the canary gets commands: {sent}"
    canary = sent[0]
    assert canary_line.startswith(f"  {canary}, ")
    assert f"Rolled back: {canary} back on {fleet.first_release}." in block
    never = next(line for line in block if line.startswith("Never received it, unchanged: "))
    assert never.endswith(" (batches 2-3).")
    assert set(never.split(": ", 1)[1].split(" (")[0].split(", ")) == set(fleet.instances) - {canary}
    for instance in fleet.instances:
        assert fleet.answer(instance)["model_version"] == "titanic-logreg-1"  # the previous release serves
        if instance != canary:
            assert fleet.api_container(instance) == before[instance]
    assert fleet.history()[-1]["result"] == "failed"


def test_4_tampered_bundle_is_refused_on_the_instance(fleet):
    bucket, key = "mlops-releases-local", f"releases/local/{fleet.first_release}.zip"
    original = fleet.s3.get_object(Bucket=bucket, Key=key)
    body, metadata = original["Body"].read(), original["Metadata"]
    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(body)) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "compose/titanic.yml":
                data = data.replace(b"restart: unless-stopped", b"restart: always")
            target.writestr(item, data)
    before = {i: fleet.api_container(i) for i in fleet.instances}
    fleet.s3.put_object(Bucket=bucket, Key=key, Body=tampered.getvalue(), Metadata=metadata)
    try:
        # With -v: the block as without, and the full results too.
        result = fleet.play(SITE, "-e", f"release={fleet.first_release}", "-v")
    finally:
        fleet.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    text = output(result)
    assert result.returncode != 0, text
    # The block is the [ERROR] that starts a line (with -v the rollout's result, printed
    # before it, holds the instance's own [ERROR] lines inside its output tails).
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(ERROR))
    end = next(n for n in range(start, len(lines)) if lines[n].startswith("Origin: "))
    block = [lines[start][len(ERROR) :], *lines[start + 1 : end]]
    assert len(block) <= 15, "\n".join(block)
    assert re.fullmatch(
        r"  i-[0-9a-f]{17}, bundle check: bundle refused: <bundle>: 1 changed \(sha256 differs from the manifest\): "
        r"compose/titanic.yml",
        block[1],
    ), block[1]
    # -v shows the rollout's whole result: every instance's state and its output from the instance.
    for key in ("stdout_tail:", "command_ids:", "batches:", "status_details:", "MLOPS_DEPLOY_FAILED - (bundle check)"):
        assert key in text, f"{key} is not in the output with -v"
    assert {i: fleet.api_container(i) for i in fleet.instances} == before


def test_5_a_second_run_is_refused_naming_the_holder(fleet):
    control = Sandbox()
    # The first run's canary waits for its agent (a slow delivery) until the second run,
    # which builds nothing, has been refused: the first run holds the lock all along.
    # Clearing the fault lets the held delivery go at once (the sandbox ends it too), and
    # the later batches are not delayed. Only this fleet's deliveries (the CI layer's
    # pipelines may run beside, in other accounts).
    control.delay_delivery(600, fleet.instances)
    first = fleet.play(SITE, "-e", tag(fleet, "v1"), "-e", "release_deployed_by=alice", wait=False)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                fleet.ssm.get_parameter(Name="/mlops/local/deploy-lock")
                break
            except fleet.ssm.exceptions.ParameterNotFound:
                assert first.poll() is None, f"the first run ended before taking the lock:\n{first.stdout.read()}"
                assert time.monotonic() < deadline, "the first run never took the lock"
                time.sleep(0.2)
        second = fleet.play(SITE, "-e", f"release={fleet.first_release}", "-e", "release_deployed_by=bob")
        holder = json.loads(fleet.ssm.get_parameter(Name="/mlops/local/deploy-lock")["Parameter"]["Value"])
    finally:
        control.clear_faults()
        out = first.communicate(timeout=1200)[0]
    assert first.returncode == 0, out[-8000:]
    assert holder.get("owner") == "alice", f"the first run no longer held the lock when the second ended: {holder}"
    block = failure_block(second, 6)
    assert (
        block[0]
        == f"Release {fleet.first_release} of titanic was not deployed to local: another run holds its deploy lock."
    )
    assert block[1].startswith(f"  /mlops/local/deploy-lock is held by alice (run {holder['run_id']}, release ")
    assert "release_force_unlock=true" in block[3]


def test_6_an_offline_instance_is_caught_before_sending(fleet):
    control = Sandbox()
    victim = fleet.instances[-1]
    commands = {i: fleet.commands_for(i) for i in fleet.instances}
    with control.timing(connection_lost_after=15):
        control.offline([victim])
        try:
            result = wait_lost_then_play(fleet, victim)
        finally:
            control.online([victim])
    block = failure_block(result, 8)
    assert block[0].endswith(" of titanic was not sent in local:")
    assert block[1:3] == [
        "  1 instance cannot receive commands; nothing was sent:",
        f"  {victim}: SSM agent lost its connection (PingStatus ConnectionLost)",
    ]
    assert {i: fleet.commands_for(i) for i in fleet.instances} == commands  # nothing was sent


def wait_lost_then_play(fleet, victim):
    """Once SSM says the victim's agent is ConnectionLost, the release of v1."""
    deadline = time.monotonic() + 120
    while (
        fleet.ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [victim]}])[
            "InstanceInformationList"
        ][0]["PingStatus"]
        != "ConnectionLost"
    ):
        assert time.monotonic() < deadline, f"{victim} never went ConnectionLost"
        time.sleep(1)
    return fleet.play(SITE, "-e", tag(fleet, "v1"))


def test_7_an_instance_killed_mid_deploy_fails_the_release_naming_it_in_bounded_time(fleet):
    control = Sandbox()
    victim = fleet.instances[-1]  # not the canary (the first): the canary's batch goes through
    lost_after = 20
    with control.timing(connection_lost_after=lost_after):
        # Killed 3 s into its deploy: pre-flight saw it Online, its invocation stays InProgress.
        control.kill([victim], on="start", after=3)
        try:
            started = time.monotonic()
            # The hosts looked at every 15 s (the inventory's minute would cost the suite 45 s).
            result = fleet.play(SITE, "-e", tag(fleet, "v2"), "-e", json.dumps({"release_rollout": FAST_CHECKS}))
            took = time.monotonic() - started
        finally:
            control.clear_faults()
            control.online([victim])  # boots it again
    text = output(result)
    note = f"release with {victim} killed mid-deploy failed after {took:.0f}s\n"
    (RECORDS / "dead-host-detection.txt").write_text(note)
    assert result.returncode != 0, text
    assert f"{victim}: lost its SSM agent (ConnectionLost since" in text, text[-6000:]
    assert "its invocation was cancelled" in text
    # Bounded: the watcher looks every 15 s, the agent is ConnectionLost 20 s after its
    # last word; the whole run (build, canary, the batch, the rollback) well under the
    # rollout's timeout (3600 s) and under the 965 s a dead host used to cost.
    assert took < 400, f"the release took {took:.0f}s to fail"
    assert f"back on {fleet.first_release}, except {victim}" in text
    assert f"except {victim}, which cannot receive commands" in text
    for instance in fleet.instances:
        if instance != victim:
            assert fleet.answer(instance)["model_version"] == "titanic-logreg-1"
    assert fleet.history()[-1]["result"] == "failed"


def answers(fleet, instance: str) -> str | None:
    """None when the instance's endpoint answers /health, else why not."""
    try:
        fleet.answer(instance)
    except OSError as exc:
        return str(exc)
    return None


def test_8_rollback_returns_to_the_previous_release(fleet):
    deadline = time.monotonic() + 120
    while any(
        i["PingStatus"] != "Online" for i in fleet.ssm.describe_instance_information()["InstanceInformationList"]
        if i["InstanceId"] in fleet.instances
    ):  # fmt: skip
        assert time.monotonic() < deadline, "the instances did not come back online"
        time.sleep(1)
    # The instance killed in test 7 booted again: its proxy serves once its unit has loaded
    # its image (after Online). The load starts when every endpoint answers.
    # Settled: 5 s of answers in a row (just after boot the live colour's container and the
    # proxy's own health checks may still be coming up).
    deadline = time.monotonic() + 240
    for instance in fleet.instances:
        steady_since = None
        while steady_since is None or time.monotonic() - steady_since < 5:
            problem = answers(fleet, instance)
            if problem is not None:
                steady_since = None
                assert time.monotonic() < deadline, f"{instance} does not answer on 8080 after its reboot: {problem}"
            elif steady_since is None:
                steady_since = time.monotonic()
            time.sleep(0.5)
    # The release of v2 and the rollback both under a constant load on every instance: no
    # request may fail (blue/green: the old model serves until the new one is healthy).
    loads = {
        i: ConstantLoad(f"http://{fleet.ips[i]}:8080/health", rate=10, workers=8, version_key="model_version")
        for i in fleet.instances
    }
    for load in loads.values():
        load.start()
    try:
        second = fleet.play(SITE, "-e", tag(fleet, "v2"))
        switched = {i: load.mark("released") for i, load in loads.items()}
        second_release = fleet.history()[-1]["release_id"]
        back = fleet.play(ROLLBACK) if second.returncode == 0 else None
    finally:
        for load in loads.values():
            load.stop()
    assert_ok(second)
    assert back is not None
    assert_ok(back)
    figures = []
    for instance, load in loads.items():
        summary = summarize(load.samples)
        figures.append(f"{instance}: {summary.line()}; versions {summary.versions}")
        failed_at = sorted(round(sample.due - load.started, 1) for sample in load.samples if not sample.ok)
        dropped = "" if summary.failed == 0 else fleet.proxy_log(instance, 20000)
        marks = (" 503 ", "<NOSRV>", "Server ")
        not_served = [line for line in dropped.splitlines() if any(mark in line for mark in marks)]
        assert summary.failed == 0, (
            f"{instance} dropped requests during the release or the rollback: {summary.line()}; "
            f"at these seconds after the load began: {failed_at[:20]} (the release ended at "
            f"{round(switched[instance] - load.started, 1)} s); its proxy's lines of server changes and "
            "failed requests:\n" + "\n".join(not_served[-40:])
        )
        # It served v1, then v2 (after the release), then v1 again (the rollback), each under load.
        during = [s.version for s in load.window(end=switched[instance]) if s.ok]
        after = [s.version for s in load.window(start=switched[instance]) if s.ok]
        assert (during[0], during[-1]) == ("titanic-logreg-1", fleet.v2_version), summary.versions
        assert (after[0], after[-1]) == (fleet.v2_version, "titanic-logreg-1"), summary.versions
    (RECORDS / "release-under-load.txt").write_text("\n".join(figures) + "\n")
    print("release and rollback under load (10 requests/s per instance):\n" + "\n".join(figures))
    for instance in fleet.instances:
        assert fleet.answer(instance)["model_version"] == "titanic-logreg-1"
    history = fleet.history()
    assert history[-1]["release_id"] == fleet.first_release
    assert history[-1]["extra"]["rollback_of"] == second_release
    ids = [h["release_id"] for h in history]
    assert fleet.first_release in ids
    assert second_release in ids


def test_9_failed_tests_name_each_url_what_came_back_and_what_was_expected(fleet):
    """The endpoints' tests alone (release_test.yml), expecting what the model does not answer."""
    endpoints = [
        {
            "name": "titanic", "hosts": "model-server", "image": "unused/titanic-api:v1", "port": 8080,
            "health_path": "/health", "health_timeout": 300,
            "test": {"path": "/predict", "body": JACK, "expect": {"prediction": 1}},
        }
    ]  # fmt: skip
    result = fleet.play(ROOT / "playbooks" / "release_test.yml", "-e", json.dumps({"release_endpoints": endpoints}))
    block = failure_block(result, 8)
    assert block[0] == "The release of titanic is deployed in local, but its tests failed:"
    assert block[1] == (
        '  titanic, functional test: 3 of 3 URLs failed (expected status 200 with JSON containing {"prediction": 1}):'
    )
    for instance in fleet.instances:
        assert (
            f"    POST http://{fleet.ips[instance]}:8080/predict: the answer does not match expect_json: "
            "$.prediction is 0, expected 1" in block
        )


def test_10_iam_proof_every_call_allowed_every_allowed_action_used(fleet, aws):
    """Per identity of IDENTITIES: its calls since the fixture began (the call log) against
    the policies provision.yml attached to its role; the difference either way is printed."""
    began = time.monotonic()
    entries = calls.read(Config(), since=fleet.started)
    iam = aws("iam")
    problems, counts = [], {}
    for identity in IDENTITIES:
        prefix = f"arn:aws:sts::123456789012:assumed-role/{identity.role}/"
        mine = [e for e in entries if (e.get("principal") or "").startswith(prefix)]
        counts[identity.name] = len(mine)
        assert mine, f"{identity.name} made no call: the flow did not run as it ({identity.flow})"
        ours, managed = attached(iam, identity)
        problems += prove(mine, identity, ours, managed) + lint(identity, ours)
    print(f"IAM proof: {len(entries)} calls read, calls per identity {counts}, in {time.monotonic() - began:.1f} s")
    assert not problems, "IAM proof failed:\n" + "\n".join(problems)

"""ssm_run_playbook against the sandbox's SSM Run Command service, through real ansible-playbook runs.

Real execution: the container instances of the sandbox's default fleet (three "full"
instances tagged Name=model-server, with Ansible) run AWS-ApplyAnsiblePlaybooks from a
.zip bundle on moto's S3, and write their output to moto's CloudWatch Logs. Simulated
instances (the service plays their agent) stand in where only the API matters: offline
agents, throttling, 120 instances. pytest prepares (bucket, bundle, instances, faults) and
checks what only the service can tell (call counters, ListCommandInvocations); the
playbooks under targets/ssm_run_playbook assert on the module's results.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from datetime import UTC, datetime

import pytest

from mlops_sandbox.client import Sandbox
from mlops_sandbox.config import Config

from .conftest import ROOT, TARGETS, assert_play_ok

REMOTE = TARGETS / "ssm_run_playbook" / "remote"
LOG_GROUP = "/mlops-test/ssm-run-playbook"


@pytest.fixture(scope="module")
def run_id():
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def sandbox(aws_env):
    # Throttling and call counts of this account only: the CI layer's pipelines may run
    # beside these tests in their own accounts.
    return Sandbox(aws_env["MLOPS_SANDBOX_CONTROL_URL"], account=aws_env["MLOPS_SANDBOX_ACCOUNT_ID"])


@pytest.fixture(scope="module")
def bucket(aws, run_id):
    """A bucket holding the release bundle (.zip) and the sleep playbook (.yml)."""
    s3 = aws("s3")
    name = f"mlops-ssm-test-{run_id}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        for file in ("deploy.yml", "release.yml"):
            archive.write(REMOTE / file, file)
    s3.put_object(Bucket=name, Key=f"releases/{run_id}.zip", Body=bundle.getvalue())
    s3.put_object(Bucket=name, Key=f"playbooks/{run_id}/sleep.yml", Body=(REMOTE / "sleep.yml").read_bytes())
    return name


@pytest.fixture(scope="module")
def fleet(sandbox):
    """The default fleet's container instances (`mlops-sandbox up` starts them)."""
    config = Config()
    found = [
        i
        for i in sandbox.instances(name=config.instance_name, env=config.instance_env, kind="full")
        if i["ping_status"] == "Online"
    ]
    if len(found) < 3:
        pytest.fail(
            f"the sandbox's default fleet has {len(found)} online instances, 3 needed (`make sandbox-up`)",
            pytrace=False,
        )
    return {"name": config.instance_name, "ids": [i["instance_id"] for i in found[:3]]}


@pytest.fixture(scope="module")
def log_group(aws):
    logs = aws("logs")
    if not logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]:
        logs.create_log_group(logGroupName=LOG_GROUP)
    return LOG_GROUP


@pytest.fixture
def clean_faults(sandbox):
    sandbox.clear_faults()
    yield sandbox
    sandbox.clear_faults()


def base_vars(aws_env, **more):
    return {"region": aws_env["AWS_REGION"], **more}


# ------------------------------------------------------------------ real execution


def test_success_on_three_instances_by_tag(playbook, aws_env, bucket, run_id, fleet, log_group):
    """Check mode changes nothing; a run changes; check and run again report no change."""
    result = playbook.run(
        "ssm_run_playbook/success.yml",
        base_vars(aws_env, bucket=bucket, run_id=run_id, fleet_name=fleet["name"], log_group=log_group),
    )
    assert_play_ok(result)
    # One line per state change while it waited.
    assert "batch 1/1 (3 instances): 3 Success" in result.stdout, result.stdout[-3000:]


def test_one_instance_fails_with_its_logs(playbook, aws_env, bucket, run_id, fleet, log_group):
    result = playbook.run(
        "ssm_run_playbook/one_fails.yml",
        base_vars(aws_env, bucket=bucket, run_id=run_id, instance_ids=fleet["ids"], log_group=log_group),
    )
    assert_play_ok(result)


def test_canary_failure_stops_the_rollout(playbook, aws, aws_env, bucket, run_id, fleet, tmp_path):
    since = datetime.now(UTC)
    result_file = tmp_path / "rollout.json"
    result = playbook.run(
        "ssm_run_playbook/canary.yml",
        base_vars(aws_env, bucket=bucket, run_id=run_id, instance_ids=fleet["ids"], result_file=str(result_file)),
    )
    assert_play_ok(result)
    rollout = json.loads(result_file.read_text())
    ssm = aws("ssm")
    # The canary got the deploy; the two others got nothing at all since the play began.
    for instance_id in fleet["ids"][1:]:
        pages = ssm.get_paginator("list_command_invocations").paginate(InstanceId=instance_id)
        received = [i for page in pages for i in page["CommandInvocations"] if i["RequestedDateTime"] >= since]
        assert received == [], f"{instance_id} received {received}"
    canary = ssm.list_command_invocations(CommandId=rollout["command_ids"][0])["CommandInvocations"]
    assert [i["InstanceId"] for i in canary] == [fleet["ids"][0]]
    assert canary[0]["Status"] == "Failed"


def test_execution_timeout_and_whole_wait_timeout(playbook, aws, aws_env, bucket, run_id, fleet):
    result = playbook.run(
        "ssm_run_playbook/timeouts.yml",
        base_vars(aws_env, bucket=bucket, run_id=run_id, instance_ids=fleet["ids"][:2]),
    )
    assert_play_ok(result)


# ----------------------------------------------------------------- API behaviour


@pytest.fixture
def simulated(sandbox, aws, run_id):
    """Simulated instances, by count: simulated(3) -> (Name tag, ids); removed afterwards."""
    made = []

    def make(count, **options):
        name = f"ssm-sim-{run_id}-{len(made)}"
        made.append(name)
        instances = sandbox.add_instances("simulated", count, name, "test", seed=7, **options)
        return name, [i["instance_id"] for i in instances]

    yield make
    for name in made:
        sandbox.remove_instances(name=name, env="test")


def wait_for_ping(aws, instance_id, status, timeout=90.0):
    """Poll DescribeInstanceInformation until the instance shows ``status``."""
    ssm = aws("ssm")
    deadline = time.monotonic() + timeout
    while True:
        found = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
        current = [i["PingStatus"] for i in found["InstanceInformationList"]]
        if current == [status]:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{instance_id} still {current} after {timeout}s, expected {status}")
        time.sleep(0.5)


def test_preflight_catches_offline_and_unmanaged(playbook, aws, aws_env, simulated, clean_faults):
    name, ids = simulated(3, duration=1)
    offline_id = ids[0]
    # The sandbox keeps AWS's ConnectionLost delay (600 s) by default; this test needs it soon.
    with clean_faults.timing(connection_lost_after=15):
        _preflight_run(playbook, aws, aws_env, clean_faults, name, ids, offline_id)


def _preflight_run(playbook, aws, aws_env, clean_faults, name, ids, offline_id):
    clean_faults.offline([offline_id])
    # An EC2 instance with the same tag that SSM does not manage (no agent at all).
    ec2 = aws("ec2")
    ami = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
    unmanaged = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
    )["Instances"][0]["InstanceId"]
    try:
        wait_for_ping(aws, offline_id, "ConnectionLost")
        clean_faults.reset_calls()
        result = playbook.run(
            "ssm_run_playbook/preflight.yml",
            base_vars(aws_env, fleet_name=name, offline_id=offline_id, unmanaged_id=unmanaged, online_ids=ids[1:]),
        )
        assert_play_ok(result)
        # The refused run sent nothing: the one SendCommand is skip_offline's.
        assert clean_faults.calls()["calls"].get("SendCommand") == 1
    finally:
        ec2.terminate_instances(InstanceIds=[unmanaged])


def test_inventory_hosts_as_targets(playbook, aws_env, simulated, sandbox):
    """Hostvars with instance_id as targets; and check mode with a document that has no dry run."""
    _name, ids = simulated(3, duration=0.5)
    sandbox.reset_calls()
    result = playbook.run("ssm_run_playbook/inventory.yml", base_vars(aws_env, instance_ids=ids))
    assert_play_ok(result)
    assert sandbox.calls()["calls"]["SendCommand"] == 1  # the real run only


def test_throttling_of_30_percent_of_calls_still_succeeds(playbook, aws_env, simulated, clean_faults, tmp_path):
    # Invocations that take 4-12 s: enough polls for 30% of them to be throttled several times.
    name, _ids = simulated(8, duration={"kind": "uniform", "low": 4, "high": 12})
    clean_faults.throttle(0.3, seed=11)
    clean_faults.reset_calls()
    result = playbook.run(
        "ssm_run_playbook/fleet.yml",
        base_vars(aws_env, fleet_name=name, fleet_size=8, result_file=str(tmp_path / "run.json")),
    )
    counters = clean_faults.calls()
    assert_play_ok(result)
    throttled = sum(counters["throttled"].values())
    assert counters["total"] >= 15, counters
    assert 2 <= throttled <= 0.6 * counters["total"], counters


@pytest.mark.parametrize("batches", [None, [1, "50%"]], ids=["one-command-by-tag", "batches-of-50-ids"])
def test_120_instances_with_pagination(playbook, aws, aws_env, simulated, sandbox, tmp_path, batches):
    name, ids = simulated(120, duration={"kind": "uniform", "low": 1, "high": 5})
    result_file = tmp_path / "run.json"
    extra = base_vars(aws_env, fleet_name=name, fleet_size=120, result_file=str(result_file))
    if batches:
        extra["batches"] = batches
    sandbox.reset_calls()
    result = playbook.run("ssm_run_playbook/fleet.yml", extra)
    calls = sandbox.calls()["calls"]
    assert_play_ok(result)
    run = json.loads(result_file.read_text())
    assert sorted(i["instance_id"] for i in run["instances"]) == sorted(ids)
    if batches:
        # 1, then 60 (50 + 10) and 59 (50 + 9): five commands of at most 50 instance IDs.
        assert [len(b["instance_ids"]) for b in run["batches"]] == [1, 60, 59]
        assert [len(b["command_ids"]) for b in run["batches"]] == [1, 2, 2]
        assert calls["SendCommand"] == 5
    else:
        # One command to the tag; its 120 invocations read 50 a page at the end (3 pages).
        assert len(run["command_ids"]) == 1
        assert calls["SendCommand"] == 1
        invocations = aws("ssm").list_command_invocations(CommandId=run["command_ids"][0], MaxResults=50)
        assert len(invocations["CommandInvocations"]) == 50
        assert "NextToken" in invocations
    assert calls["ListCommandInvocations"] >= 3
    # Following costs few calls: nothing per instance.
    assert calls.get("GetCommandInvocation", 0) == 0


def test_bad_input_sends_nothing(playbook, aws_env, bucket, run_id, fleet, sandbox):
    sandbox.reset_calls()
    result = playbook.run(
        "ssm_run_playbook/bad_input.yml",
        base_vars(aws_env, bucket=bucket, run_id=run_id, instance_id=fleet["ids"][0]),
    )
    assert_play_ok(result)
    assert "SendCommand" not in sandbox.calls()["calls"]


def test_the_module_alone_without_its_action_plugin(aws_env, simulated, tmp_path):
    """The module file run directly (AnsibleAWSModule, env credentials): same work, same result."""
    _name, ids = simulated(2, duration=0.5)
    args = tmp_path / "args.json"
    args.write_text(
        json.dumps(
            {
                "ANSIBLE_MODULE_ARGS": {
                    "instance_ids": ids,
                    "document_name": "AWS-RunShellScript",
                    "parameters": {"commands": ["echo hello"]},
                }
            }
        )
    )
    module = ROOT / "plugins" / "modules" / "ssm_run_playbook.py"
    env = {**os.environ, **aws_env, "PYTHONPATH": str(ROOT / ".build" / "collections")}
    done = subprocess.run(
        [sys.executable, str(module), str(args)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["changed"] is True
    assert result["summary"] == {"total": 2, "success": 2}
    assert sorted(i["instance_id"] for i in result["instances"]) == sorted(ids)
    # What the (simulated) agent printed, per instance.
    assert {i["instance_id"]: i["stdout_tail"] for i in result["instances"]} == {
        i: [f"simulated run on {i}"] for i in ids
    }

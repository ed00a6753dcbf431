"""playbooks/provision.yml against the sandbox, on resources of its own (names of this
test, not the release flow's): check mode makes nothing, a run makes it, a second run
changes nothing, state=absent removes it; bad input stops before any AWS call."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from .conftest import BIN, ROOT
from .iam_proof import Identity, attached, lint

INVENTORY = ROOT / "inventories" / "local"
PLAYBOOK = ROOT / "playbooks" / "provision.yml"


@pytest.fixture(scope="module")
def names():
    run = uuid.uuid4().hex[:6]
    return {
        "provision_bucket": f"provision-test-{run}",
        "provision_log_group": f"/provision-test/{run}",
        "provision_instance_role": f"provision-test-{run}-instance",
        "provision_ci_role": f"provision-test-{run}-ci",
        "provision_repositories": "[]",
    }


def run(playbook_env, names, *extra):
    argv = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), str(PLAYBOOK)]
    for key, value in names.items():
        argv += ["-e", f'{{"{key}": {value}}}' if value.startswith("[") else f"{key}={value}"]
    return subprocess.run([*argv, *extra], env=playbook_env, capture_output=True, text=True, timeout=600, check=False)


def recap(result) -> dict[str, int]:
    found = re.search(r"localhost\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", result.stdout)
    assert found, result.stdout[-3000:] + result.stderr[-2000:]
    return {"ok": int(found[1]), "changed": int(found[2]), "failed": int(found[3])}


def exists(aws, names) -> dict[str, bool]:
    iam, logs, s3 = aws("iam"), aws("logs"), aws("s3")
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    groups = {
        g["logGroupName"]
        for g in logs.describe_log_groups(logGroupNamePrefix=names["provision_log_group"])["logGroups"]
    }
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    return {
        "bucket": names["provision_bucket"] in buckets,
        "log group": names["provision_log_group"] in groups,
        "instance role": names["provision_instance_role"] in roles,
        "ci role": names["provision_ci_role"] in roles,
    }


def test_check_run_again_teardown(playbook, aws, names):
    env = playbook.env
    check = run(env, names, "--check")
    assert recap(check)["failed"] == 0
    assert recap(check)["changed"] > 0
    assert not any(exists(aws, names).values()), exists(aws, names)
    first = run(env, names)
    assert recap(first)["failed"] == 0, first.stdout[-4000:]
    assert all(exists(aws, names).values()), exists(aws, names)
    policy = aws("iam").get_role_policy(RoleName=names["provision_instance_role"], PolicyName="mlops-instance")
    assert "s3:GetObject" in str(policy["PolicyDocument"])
    managed = aws("iam").list_attached_role_policies(RoleName=names["provision_instance_role"])["AttachedPolicies"]
    assert [p["PolicyName"] for p in managed] == ["AmazonSSMManagedInstanceCore"]
    # The policies as attached: parliament and cloudsplaining find nothing.
    shipped = (("provision_instance_role", "instance.yml.j2"), ("provision_ci_role", "ci-deployer.yml.j2"))
    for role, policy_file in shipped:
        identity = Identity(policy_file.removesuffix(".yml.j2"), names[role], policy_file, "test_provision")
        ours = attached(aws("iam"), identity)[0]
        assert len(ours) == 1, ours
        assert not lint(identity, ours), lint(identity, ours)
    second = run(env, names)
    assert recap(second) == {**recap(second), "changed": 0, "failed": 0}, second.stdout[-4000:]
    aws("s3").put_object(Bucket=names["provision_bucket"], Key="releases/local/x.zip", Body=b"x")
    kept = run(env, names, "-e", "state=absent")
    assert recap(kept)["failed"] > 0  # a bucket with contents stays without the flag
    assert exists(aws, names)["bucket"]
    gone = run(env, names, "-e", "state=absent", "-e", "provision_empty_bucket=true")
    assert recap(gone)["failed"] == 0, gone.stdout[-4000:]
    assert not any(exists(aws, names).values()), exists(aws, names)


BAD_INPUT = {
    "invalid CIDR": ({"provision_ingress_cidrs": '["10.0.0.0/33"]'}, "ingress CIDRs 10.0.0.0/33"),
    "bucket name AWS refuses": ({"provision_bucket": "Bad_Bucket..name"}, "bucket Bad_Bucket..name"),
    "unknown region": ({"provision_region": "eu-westt-1"}, "provision_region"),
    "instance type typo": ({"provision_instance_type": "t3.mediun"}, "instance type t3.mediun"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_stops_before_any_call(playbook, aws, names, case):
    override, says = BAD_INPUT[case]
    before = exists(aws, names)
    result = run(playbook.env, {**names, **override})
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert says in out, out[-3000:]
    # Only what is wrong is named: the other settings are fine.
    others = [other for case_override, other in BAD_INPUT.values() if case_override != override]
    assert not [other for other in others if other in out], out[-3000:]
    assert "Traceback" not in out
    assert recap(result)["changed"] == 0
    assert exists(aws, names) == before  # nothing made

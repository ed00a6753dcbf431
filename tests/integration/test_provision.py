"""playbooks/provision.yml against the sandbox, on resources of its own (names of this
test, not the release flow's, in a VPC of its own with two subnets): check mode makes nothing, a run makes
it, a second run changes nothing, state=absent removes it; bad input stops before any AWS
call. One provision run is shared by every assertion on what it made."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import uuid

import jinja2
import pytest
import yaml

from mlops_sandbox.client import Sandbox

from .conftest import BIN, ROOT
from .iam_proof import Identity, attached, lint, prove

INVENTORY = ROOT / "inventories" / "local"
PLAYBOOK = ROOT / "playbooks" / "provision.yml"
POLICIES = ROOT / "roles" / "provision" / "templates" / "iam"
LIVE = ("pending", "running", "stopping", "stopped")


def own_network(ec2) -> tuple[str, list[str]]:
    """A VPC of this test's own with two subnets in two availability zones, so that the model
    hosts have subnets to spread over and EFS two mount targets (moto only: nothing runs in
    it). Kept for later runs, found by its Name tag."""
    tag = [{"Key": "Name", "Value": "provision-test"}]
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["provision-test"]}])["Vpcs"]
    if found:
        vpc_id = found[0]["VpcId"]
    else:
        vpc_id = ec2.create_vpc(CidrBlock="10.250.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": tag}])[
            "Vpc"
        ]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    for number, zone in enumerate(zones):
        if not any(s["AvailabilityZone"] == zone for s in subnets):
            subnets.append(
                ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.250.{number}.0/24", AvailabilityZone=zone)["Subnet"]
            )
    return vpc_id, sorted(s["SubnetId"] for s in subnets)


@pytest.fixture(scope="module")
def names(aws):
    run = uuid.uuid4().hex[:6]
    ec2 = aws("ec2")
    vpc_id, subnet_ids = own_network(ec2)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    prefix = f"provision-test-{run}"
    return {
        "provision_bucket": prefix,
        "provision_log_group": f"/provision-test/{run}",
        "provision_instance_role": f"{prefix}-instance",
        "provision_ci_role": f"{prefix}-ci",
        "provision_repositories": "[]",
        "provision_vpc_id": vpc_id,
        "provision_subnet_ids": json.dumps(subnet_ids),
        "provision_ami_id": image,
        "provision_ingress_cidrs": '["10.0.0.0/8"]',
        "provision_instances": json.dumps({f"{prefix}-model": 2}),
        "provision_model_sg": f"{prefix}-model",
        "provision_bastion_name": f"{prefix}-bastion",
        "provision_bastion_role": f"{prefix}-bastion",
        "provision_bastion_sg": f"{prefix}-bastion",
        "provision_efs_name": f"{prefix}-models",
        "provision_efs_sg": f"{prefix}-efs",
        "provision_train_cluster": f"{prefix}-training",
        "provision_train_task_role": f"{prefix}-train-task",
        "provision_train_execution_role": f"{prefix}-train-execution",
        "provision_train_events_role": f"{prefix}-train-events",
    }


def run(playbook_env, names, *extra):
    argv = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), str(PLAYBOOK)]
    for key, value in names.items():
        argv += ["-e", f'{{"{key}": {value}}}' if value[:1] in "[{" else f"{key}={value}"]
    return subprocess.run([*argv, *extra], env=playbook_env, capture_output=True, text=True, timeout=900, check=False)


def recap(result) -> dict[str, int]:
    found = re.search(r"localhost\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", result.stdout)
    assert found, result.stdout[-3000:] + result.stderr[-2000:]
    return {"ok": int(found[1]), "changed": int(found[2]), "failed": int(found[3])}


def instances(aws, name: str) -> list[dict]:
    pages = aws("ec2").describe_instances(
        Filters=[{"Name": "tag:Name", "Values": [name]}, {"Name": "instance-state-name", "Values": list(LIVE)}]
    )
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def groups(aws, names) -> dict[str, dict]:
    wanted = [names[k] for k in ("provision_model_sg", "provision_bastion_sg", "provision_efs_sg")]
    found = aws("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [names["provision_vpc_id"]]}, {"Name": "group-name", "Values": wanted}]
    )["SecurityGroups"]
    return {g["GroupName"]: g for g in found}


def file_systems(aws, names) -> list[dict]:
    return aws("efs").describe_file_systems(CreationToken=names["provision_efs_name"])["FileSystems"]


def model_group(names) -> str:
    (group,) = json.loads(names["provision_instances"])
    return group


def exists(aws, names) -> dict[str, bool]:
    iam, logs, s3 = aws("iam"), aws("logs"), aws("s3")
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    log_groups = {
        g["logGroupName"]
        for g in logs.describe_log_groups(logGroupNamePrefix=names["provision_log_group"])["logGroups"]
    }
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    clusters = aws("ecs").describe_clusters(clusters=[names["provision_train_cluster"]])["clusters"]
    made = groups(aws, names)
    role_keys = ("provision_instance_role", "provision_ci_role", "provision_bastion_role", "provision_train_task_role",
                 "provision_train_execution_role", "provision_train_events_role")  # fmt: skip
    return {
        "bucket": names["provision_bucket"] in buckets,
        "log group": names["provision_log_group"] in log_groups,
        **{key.removeprefix("provision_"): names[key] in roles for key in role_keys},
        **{
            key.removeprefix("provision_"): names[key] in made
            for key in ("provision_model_sg", "provision_bastion_sg", "provision_efs_sg")
        },  # fmt: skip
        "model hosts": bool(instances(aws, model_group(names))),
        "bastion": bool(instances(aws, names["provision_bastion_name"])),
        "file system": bool(file_systems(aws, names)),
        "training cluster": any(c["status"] == "ACTIVE" for c in clusters),
    }


# The identities provision.yml makes: (the role's key in names, its policy file).
SHIPPED = (
    ("provision_instance_role", "instance.yml.j2"),
    ("provision_ci_role", "ci-deployer.yml.j2"),
    ("provision_bastion_role", "bastion.yml.j2"),
    ("provision_train_task_role", "training-task.yml.j2"),
    ("provision_train_execution_role", "training-execution.yml.j2"),
    ("provision_train_events_role", "events.yml.j2"),
)


@pytest.fixture(scope="module")
def provisioned(playbook, aws, names):
    """Check mode, then the one real run the assertions below share; state=absent after them."""
    check = run(playbook.env, names, "--check")
    first = run(playbook.env, names)
    state = {"check": check, "first": first, "torn down": False}
    yield state
    if not state["torn down"]:
        run(playbook.env, names, "-e", "state=absent", "-e", "provision_empty_bucket=true")


def test_check_mode_makes_nothing(provisioned):
    check = provisioned["check"]
    assert recap(check)["failed"] == 0, check.stdout[-4000:]
    assert recap(check)["changed"] > 0
    # The plan names what it would make, the network part included.
    for task in ("The model hosts' security group", "The model hosts, per endpoint host group", "The training cluster"):
        assert task in check.stdout, check.stdout[-4000:]


def test_run_makes_everything(provisioned, aws, names):
    assert recap(provisioned["first"])["failed"] == 0, provisioned["first"].stdout[-4000:]
    made = exists(aws, names)
    assert all(made.values()), made


def test_instances(provisioned, aws, names):
    sgs = groups(aws, names)
    hosts = instances(aws, model_group(names))
    assert len(hosts) == 2, hosts
    # Spread across the subnets, one each.
    assert sorted(h["SubnetId"] for h in hosts) == sorted(json.loads(names["provision_subnet_ids"])), hosts
    (bastion,) = instances(aws, names["provision_bastion_name"])
    for instance, profile, group in (
        *[(host, names["provision_instance_role"], names["provision_model_sg"]) for host in hosts],
        (bastion, names["provision_bastion_role"], names["provision_bastion_sg"]),
    ):
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["env"] == "local", tags
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        assert instance["IamInstanceProfile"]["Arn"].endswith(f":instance-profile/{profile}")
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [sgs[group]["GroupId"]]
        assert instance["ImageId"] == names["provision_ami_id"]
    user_data = aws("ec2").describe_instance_attribute(InstanceId=hosts[0]["InstanceId"], Attribute="userData")
    assert "amazon-ssm-agent" in base64.b64decode(user_data["UserData"]["Value"]).decode(), user_data


def test_security_groups(provisioned, aws, names):
    sgs = groups(aws, names)
    model, bastion, efs = (sgs[names[k]] for k in ("provision_model_sg", "provision_bastion_sg", "provision_efs_sg"))
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in model["IpPermissions"]] == [
        (8080, ["10.0.0.0/8"])
    ]
    assert bastion["IpPermissions"] == []
    rules = efs["IpPermissions"]
    nfs = {(p["FromPort"], p["ToPort"], pair["GroupId"]) for p in rules for pair in p["UserIdGroupPairs"]}
    assert nfs == {(2049, 2049, model["GroupId"]), (2049, 2049, bastion["GroupId"])}
    assert not [p for p in efs["IpPermissions"] if p["IpRanges"]]


def test_file_system(provisioned, aws, names):
    (fs,) = file_systems(aws, names)
    assert fs["Encrypted"] is True
    assert {t["Key"]: t["Value"] for t in fs["Tags"]}["env"] == "local"
    efs = aws("efs")
    targets = efs.describe_mount_targets(FileSystemId=fs["FileSystemId"])["MountTargets"]
    assert sorted(t["SubnetId"] for t in targets) == sorted(json.loads(names["provision_subnet_ids"]))
    sg = groups(aws, names)[names["provision_efs_sg"]]["GroupId"]
    for target in targets:
        answer = efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])
        assert answer["SecurityGroups"] == [sg]


def test_policies_as_attached(provisioned, aws, names):
    managed = aws("iam").list_attached_role_policies(RoleName=names["provision_instance_role"])["AttachedPolicies"]
    assert [p["PolicyName"] for p in managed] == ["AmazonSSMManagedInstanceCore"]
    managed = aws("iam").list_attached_role_policies(RoleName=names["provision_bastion_role"])["AttachedPolicies"]
    assert [p["PolicyName"] for p in managed] == ["AmazonSSMManagedInstanceCore"]
    # Exactly the shipped file, and parliament and cloudsplaining find nothing in it.
    for role, policy_file in SHIPPED:
        identity = Identity(policy_file.removesuffix(".yml.j2"), names[role], policy_file, "test_provision")
        ours = attached(aws("iam"), identity)[0]
        assert len(ours) == 1, ours
        assert not lint(identity, ours), lint(identity, ours)
    events = attached(aws("iam"), Identity("events", names["provision_train_events_role"], "events.yml.j2", ""))[0][0]
    passed = [s["Resource"] for s in events["Statement"] if s["Action"] == ["iam:PassRole"]]
    assert passed == [[f"arn:aws:iam::123456789012:role/{names[k]}"
                       for k in ("provision_train_task_role", "provision_train_execution_role")]]  # fmt: skip


SYNC = ROOT / "roles" / "bastion_efs_sync" / "files" / "mlops_efs_sync.py"


def test_the_bastion_syncs_the_models_with_only_what_its_policy_allows(provisioned, aws, aws_env, names, tmp_path):
    """The IAM proof of the bastion: the role's sync program (and the AWS CLI it runs) as the
    bastion's role, the way EC2 gives it through the instance profile (an STS session of the
    role named after the instance; the sandbox's IMDS does the same for its instances);
    every call it made is allowed by the policy as attached, every action it allows used."""
    bucket = names["provision_bucket"]
    s3 = aws("s3")
    models = {"titanic/model.json": b'{"version": "1"}', "titanic/weights.bin": bytes(4096)}
    for key, body in models.items():
        s3.put_object(Bucket=bucket, Key=f"models/{key}", Body=body)
    s3.put_object(Bucket=bucket, Key="releases/local/not-the-bastions.zip", Body=b"x")
    (bastion,) = instances(aws, names["provision_bastion_name"])
    role = aws("iam").get_role(RoleName=names["provision_bastion_role"])["Role"]
    began = time.time()
    creds = aws("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=bastion["InstanceId"])["Credentials"]
    efs = tmp_path / "efs"
    efs.mkdir()
    config = tmp_path / "models.json"
    config.write_text(json.dumps({
        "name": "models", "bucket": bucket, "prefix": "models", "destination": str(efs), "delete": True,
        "status_file": str(tmp_path / "status.json"), "lock_file": str(tmp_path / "lock"),
        "log_file": str(tmp_path / "sync.log"), "syslog": False, "aws_command": [str(BIN / "aws")],
        "endpoint_url": aws_env["AWS_ENDPOINT_URL"], "region": aws_env["AWS_REGION"],
        "environment": {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                        "AWS_SESSION_TOKEN": creds["SessionToken"]},
    }))  # fmt: skip
    synced = subprocess.run([str(BIN / "python"), str(SYNC), "--config", str(config)], capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    assert synced.returncode == 0, synced.stderr + (tmp_path / "sync.log").read_text()
    assert {str(f.relative_to(efs)): f.read_bytes() for f in efs.rglob("*") if f.is_file()} == models
    prefix = f"arn:aws:sts::123456789012:assumed-role/{role['RoleName']}/{bastion['InstanceId']}"
    theirs = [c for c in Sandbox(aws_env["MLOPS_SANDBOX_CONTROL_URL"]).call_log(since=began)
              if c.get("principal") == prefix]  # fmt: skip
    assert {c["operation"] for c in theirs} >= {"ListObjectsV2", "GetObject"}, theirs
    identity = Identity("bastion", role["RoleName"], "bastion.yml.j2", "mlops_efs_sync.py")
    ours, managed = attached(aws("iam"), identity)
    problems = prove(theirs, identity, ours, managed) + lint(identity, ours)
    print(f"bastion IAM proof: {len(theirs)} calls, {sorted({c['operation'] for c in theirs})}")
    assert not problems, "bastion IAM proof failed:\n" + "\n".join(problems)


def test_second_run_changes_nothing(provisioned, playbook, names):
    second = run(playbook.env, names)
    assert recap(second) == {**recap(second), "changed": 0, "failed": 0}, second.stdout[-4000:]


def test_teardown(provisioned, playbook, aws, names):
    aws("s3").put_object(Bucket=names["provision_bucket"], Key="releases/local/x.zip", Body=b"x")
    kept = run(playbook.env, names, "-e", "state=absent")
    assert recap(kept)["failed"] > 0  # a bucket with contents stays without the flag
    assert exists(aws, names)["bucket"]
    gone = run(playbook.env, names, "-e", "state=absent", "-e", "provision_empty_bucket=true")
    provisioned["torn down"] = recap(gone)["failed"] == 0
    assert recap(gone)["failed"] == 0, gone.stdout[-4000:]
    assert not any(exists(aws, names).values()), exists(aws, names)


BAD_INPUT = {
    "invalid CIDR": ({"provision_ingress_cidrs": '["10.0.0.0/33"]'}, "ingress CIDRs 10.0.0.0/33"),
    "bucket name AWS refuses": ({"provision_bucket": "Bad_Bucket..name"}, "bucket Bad_Bucket..name"),
    "unknown region": ({"provision_region": "eu-westt-1"}, "provision_region"),
    "instance type typo": ({"provision_instance_type": "t3.mediun"}, "instance type t3.mediun"),
    "instance family typo": ({"provision_bastion_instance_type": "tt3.micro"}, "instance type tt3.micro"),
    "bad AMI id": ({"provision_ami_id": "ami-12345"}, "AMI ami-12345"),
    "bad VPC id": ({"provision_vpc_id": "vpc-xyz"}, "VPC vpc-xyz"),
    "bad subnet id": ({"provision_subnet_ids": '["subnet-1"]'}, "subnets subnet-1"),
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


def test_every_policy_file_lints_clean():
    """Each shipped policy, rendered with the local inventory's values and every optional
    statement on: no `*` or `service:*` action, nothing parliament or cloudsplaining flag."""
    values = {}
    for path in sorted((INVENTORY / "group_vars" / "all").glob("*.yml")):
        values.update({k: v for k, v in (yaml.safe_load(path.read_text()) or {}).items() if "{{" not in str(v)})
    account, region = values["release_aws_account_id"], values["release_aws_region"]
    values.update(
        provision_env=values["release_env"], provision_account_id=account, provision_region=region,
        provision_registry_account_id=account, provision_bucket=values["release_bucket"],
        provision_log_group=values["release_log_group"], provision_repositories=["titanic-api"],
        provision_models_prefix="models", provision_efs_name="mlops-local-models", provision_efs_iam_mounts=True,
        provision_train_cluster=values["train_cluster"], provision_train_family=values["train_family"],
        provision_train_task_role=values["train_task_role"],
        provision_train_execution_role=values["train_execution_role"],
        provision_train_repository=values["train_repository"], provision_train_log_group=values["train_log_group"],
        provision_train_model_bucket=values["release_bucket"],
        provision_train_model_prefix=values["train_model_prefix"],
        # the promotion statement on (a promoting environment reads the previous one's releases)
        provision_promoted_from={"env": "dev", "bucket": "mlops-releases-dev"}, provision_ci_pushes_images=True,
    )  # fmt: skip
    files = sorted(p for p in POLICIES.glob("*.yml.j2") if not p.name.endswith("-trust.yml.j2"))
    assert len(files) == 6, files
    problems = []
    for path in files:
        document = yaml.safe_load(jinja2.Template(path.read_text(), undefined=jinja2.StrictUndefined).render(values))
        identity = Identity(path.name.removesuffix(".yml.j2"), "", path.name, "test_provision")
        problems += lint(identity, [document])
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            problems += [f"{path.name} allows {a}" for a in actions if a == "*" or a.endswith(":*")]
    assert not problems, problems

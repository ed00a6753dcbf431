"""The call log (mlops_sandbox.calls): one line per AWS call the sandbox answers, with the
caller's identity. Pure-function tests first (the log file, SigV4 scopes, ARNs), then the
running sandbox: calls made as an assumed role through moto and through the SSM service
come back with the role session as principal, the right operation and resources, once."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from mlops_sandbox import arns, calls
from mlops_sandbox.config import Config
from mlops_sandbox.moto_record import match_rest

from .conftest import boto_client


@dataclass(frozen=True)
class _Cfg:
    state_dir: Path


def _write_many(state_dir: str, worker: int, count: int) -> None:
    cfg = _Cfg(Path(state_dir))
    for i in range(count):
        calls.record(
            cfg, source=f"w{worker}", service="s3", operation="GetObject", access_key=f"AK{worker}",
            resources=[f"arn:aws:s3:::b/{'x' * 3000}{i}"],
        )  # fmt: skip


def test_record_read_since_clear(tmp_path):
    cfg = _Cfg(tmp_path)
    assert calls.read(cfg) == []
    first = calls.record(cfg, source="moto", service="s3", operation="ListBuckets", access_key="AKIA1")
    time.sleep(0.01)
    middle = time.time()
    calls.record(
        cfg, source="ssm", service="ssm", operation="SendCommand", access_key="ASIA2", region="eu-west-1",
        resources=("arn:aws:ssm:eu-west-1::document/AWS-RunShellScript",), status=400, error="InvalidInstanceId",
    )  # fmt: skip
    entries = calls.read(cfg)
    assert [e["operation"] for e in entries] == ["ListBuckets", "SendCommand"]
    assert entries[0] == first
    assert entries[1]["resources"] == ["arn:aws:ssm:eu-west-1::document/AWS-RunShellScript"]
    assert (entries[1]["status"], entries[1]["error"]) == (400, "InvalidInstanceId")
    assert [e["operation"] for e in calls.read(cfg, since=middle)] == ["SendCommand"]
    # Recorded without a principal: resolved from the identity table when read.
    assert entries[1]["principal"] is None
    calls.remember_identity(cfg, "ASIA2", "arn:aws:sts::111122223333:assumed-role/ci/run-1", "111122223333")
    resolved = calls.read(cfg)[1]
    assert resolved["principal"] == "arn:aws:sts::111122223333:assumed-role/ci/run-1"
    assert resolved["account"] == "111122223333"
    assert calls.identity_of(cfg, "ASIA2")["principal"].endswith("/ci/run-1")
    assert calls.identity_of(cfg, "nope") is None
    calls.clear(cfg)
    assert calls.read(cfg) == []


def test_internal_calls_are_not_recorded(tmp_path):
    cfg = _Cfg(tmp_path)
    assert calls.record(cfg, source="moto", service="ec2", operation="X", access_key=calls.INTERNAL_ACCESS_KEY) is None
    assert calls.read(cfg) == []


def test_many_writers_many_processes_whole_lines(tmp_path):
    """4 processes x 2 threads write 150 long lines each at once: every line whole."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 150)) for w in range(4)]
    threads = [threading.Thread(target=_write_many, args=(str(tmp_path), 10 + w, 150)) for w in range(2)]
    for worker in procs + threads:
        worker.start()
    for worker in procs + threads:
        worker.join(60)
    raw = (tmp_path / calls.FILE).read_bytes().splitlines()
    assert len(raw) == 6 * 150
    entries = calls.read(_Cfg(tmp_path))
    assert len(entries) == 6 * 150  # none torn: every line parses
    per_worker = {e["source"]: 0 for e in entries}
    for e in entries:
        per_worker[e["source"]] += 1
    assert set(per_worker.values()) == {150}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "AWS4-HMAC-SHA256 Credential=ASIAXYZ/20261203/eu-west-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=abc",
            calls.Scope("ASIAXYZ", "20261203", "eu-west-1", "s3"),
        ),
        ("AKIA1/20261203/us-east-1/ecr/aws4_request", calls.Scope("AKIA1", "20261203", "us-east-1", "ecr")),
        ("Basic QVdTOnRva2Vu", None),
        (None, None),
    ],
)
def test_scope_of(header, expected):
    assert calls.scope_of(header) == expected


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "operation"),
    [
        ("GET", "/bkt", {"list-type": "2", "prefix": "r/"}, {}, "ListObjectsV2"),
        ("GET", "/bkt", {}, {}, "ListObjects"),
        ("GET", "/bkt", {"versioning": ""}, {}, "GetBucketVersioning"),
        ("HEAD", "/bkt/releases/local/r-1.zip", {}, {}, "HeadObject"),
        ("HEAD", "/bkt", {}, {}, "HeadBucket"),
        ("PUT", "/bkt/k", {}, {}, "PutObject"),
        ("PUT", "/bkt/k", {}, {"x-amz-copy-source": "other/k"}, "CopyObject"),
        ("GET", "/bkt/k", {"attributes": ""}, {}, "GetObjectAttributes"),
        ("POST", "/bkt/k", {"uploads": ""}, {}, "CreateMultipartUpload"),
        ("GET", "/", {}, {}, "ListBuckets"),
    ],
)
def test_rest_routes_from_botocore(method, path, query, headers, operation):
    matched = match_rest("s3", method, path, query, headers)
    assert matched is not None
    assert matched[0] == operation


def test_efs_rest_json_route():
    assert match_rest("elasticfilesystem", "GET", "/2015-02-01/file-systems", {}, {})[0] == "DescribeFileSystems"
    op, params = match_rest("elasticfilesystem", "DELETE", "/2015-02-01/file-systems/fs-12ab", {}, {})
    assert (op, params) == ("DeleteFileSystem", {"FileSystemId": "fs-12ab"})


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        ("s3", "CopyObject", {"Bucket": "b", "Key": "new", "CopySource": "/src/old%20one?versionId=3"},
         ["arn:aws:s3:::b/new", "arn:aws:s3:::src/old one"]),
        ("ssm", "GetParameterHistory", {"Name": "/mlops/prod/releases/titanic"},
         ["arn:aws:ssm:eu-west-1:111:parameter/mlops/prod/releases/titanic"]),
        ("ssm", "GetParameters", {"Names": ["a", "/b/c"]},
         ["arn:aws:ssm:eu-west-1:111:parameter/a", "arn:aws:ssm:eu-west-1:111:parameter/b/c"]),
        ("ssm", "SendCommand", {"DocumentName": "AWS-ApplyAnsiblePlaybooks", "InstanceIds": ["i-1"]},
         ["arn:aws:ssm:eu-west-1::document/AWS-ApplyAnsiblePlaybooks", "arn:aws:ec2:eu-west-1:111:instance/i-1"]),
        ("ecr", "BatchGetImage", {"repositoryName": "titanic-api", "registryId": "444"},
         ["arn:aws:ecr:eu-west-1:444:repository/titanic-api"]),
        ("logs", "GetLogEvents", {"logGroupName": "/g", "logStreamName": "c/i/s/stdout"},
         ["arn:aws:logs:eu-west-1:111:log-group:/g:log-stream:c/i/s/stdout"]),
        ("logs", "DescribeLogStreams", {"logGroupName": "/g"}, ["arn:aws:logs:eu-west-1:111:log-group:/g"]),
        ("ecs", "RunTask", {"cluster": "train", "taskDefinition": "trainer:3"},
         ["arn:aws:ecs:eu-west-1:111:task-definition/trainer:3", "arn:aws:ecs:eu-west-1:111:cluster/train"]),
        ("iam", "GetRole", {"RoleName": "ci"}, ["arn:aws:iam::111:role/ci"]),
        ("ec2", "DescribeInstances", {}, []),
    ],
)  # fmt: skip
def test_resources(service, operation, params, expected):
    assert arns.resources(service, operation, params, "eu-west-1", "111") == expected


# -- the running sandbox ------------------------------------------------------------------


@pytest.fixture(scope="module")
def role_session(sandbox_env):
    """Credentials of a fresh role session (AssumeRole through moto), and the role's name."""
    kw = {"region_name": sandbox_env["AWS_REGION"], "aws_access_key_id": "testing", "aws_secret_access_key": "x"}
    iam = boto3.client("iam", endpoint_url=sandbox_env["AWS_ENDPOINT_URL"], **kw)
    role = f"calls-test-{uuid.uuid4().hex[:6]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}')
    sts = boto3.client("sts", endpoint_url=sandbox_env["AWS_ENDPOINT_URL"], **kw)
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::123456789012:role/{role}", RoleSessionName="run-7")["Credentials"]
    yield role, creds
    iam.delete_role(RoleName=role)


def test_calls_through_moto_and_the_ssm_service_carry_the_role_session(sandbox_env, role_session):
    role, creds = role_session
    config = Config()
    principal = f"arn:aws:sts::123456789012:assumed-role/{role}/run-7"
    start = time.time()
    name = f"/calls-test/{uuid.uuid4().hex[:6]}"
    ssm = boto_client(sandbox_env, credentials=creds, service="ssm")
    ssm.put_parameter(Name=name, Value="1", Type="String")  # forwarded by the SSM service to moto
    ssm.list_commands(MaxResults=5)  # answered by the SSM service itself
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=name + "-missing")
    boto_client(sandbox_env, credentials=creds, service="sts").get_caller_identity()
    ssm.delete_parameter(Name=name)
    mine = [e for e in calls.read(config, since=start) if e["access_key"] == creds["AccessKeyId"]]
    seen = [(e["source"], e["service"], e["operation"], e["status"], e["error"]) for e in mine]
    assert seen == [
        ("moto", "ssm", "PutParameter", 200, None),
        ("ssm", "ssm", "ListCommands", 200, None),
        ("moto", "ssm", "GetParameter", 400, "ParameterNotFound"),
        ("moto", "sts", "GetCallerIdentity", 200, None),
        ("moto", "ssm", "DeleteParameter", 200, None),
    ], seen  # each call once: what the SSM service forwards is recorded by moto only
    assert {e["principal"] for e in mine} == {principal}
    assert mine[0]["resources"] == [arns.ssm_parameter_arn(name, config.region, "123456789012")]
    assert mine[0]["region"] == config.region


def test_a_listings_prefix_is_recorded_for_the_s3_prefix_condition(sandbox_env, role_session):
    _role, creds = role_session
    config = Config()
    bucket = f"calls-test-{uuid.uuid4().hex[:6]}"
    admin = boto_client(sandbox_env, service="s3")
    admin.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": config.region})
    s3 = boto_client(sandbox_env, credentials=creds, service="s3")
    start = time.time()
    try:
        s3.list_objects_v2(Bucket=bucket, Prefix="models/")
        s3.list_objects_v2(Bucket=bucket)
    finally:
        admin.delete_bucket(Bucket=bucket)
    mine = [e for e in calls.read(config, since=start) if e["access_key"] == creds["AccessKeyId"]]
    assert [(e["operation"], e.get("detail")) for e in mine] == [("ListObjectsV2", {"prefix": "models/"}),
                                                             ("ListObjectsV2", None)], mine  # fmt: skip


def test_every_issued_key_is_in_the_identity_table(role_session):
    _role, creds = role_session
    known = calls.identity_of(Config(), creds["AccessKeyId"])
    assert known is not None
    assert known["principal"].endswith("/run-7")


def test_the_control_plane_serves_the_log(role_session):
    from mlops_sandbox.client import Sandbox

    _role, creds = role_session
    start = time.time() - 600
    entries = Sandbox().call_log(since=start)
    issued = [e for e in entries if (e.get("detail") or {}).get("issued_access_key") == creds["AccessKeyId"]]
    assert [(e["service"], e["operation"]) for e in issued] == [("sts", "AssumeRole")], issued


@pytest.mark.skipif(not Config().registry_enabled, reason="this sandbox runs no registry")
def test_docker_push_and_pull_are_the_callers_ecr_actions(sandbox_env, role_session, tmp_path):
    import base64
    import os
    import subprocess

    role, creds = role_session
    config = Config()
    ecr = boto_client(sandbox_env, credentials=creds, service="ecr")
    repo = f"calls-test/img-{uuid.uuid4().hex[:6]}"
    ecr.create_repository(repositoryName=repo)
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _sep, password = base64.b64decode(token).decode().partition(":")
    assert user == "AWS"
    assert password == f"{config.account_id}-auth-token.{creds['AccessKeyId']}"  # this caller's token
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path)}

    def docker(*args, stdin=None):
        result = subprocess.run(["docker", *args], env=env, input=stdin, capture_output=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        return result

    ref = f"{config.registry_address}/{repo}:1"
    start = time.time()
    docker("login", "--username", user, "--password-stdin", config.registry_address, stdin=password.encode())
    docker("import", "--change", "LABEL io.mlops-deploy.test=sandbox-calls", "-", ref, stdin=b"")
    try:
        docker("push", ref)
        docker("image", "rm", ref)
        docker("pull", ref)
    finally:
        subprocess.run(["docker", "image", "rm", "--force", ref], capture_output=True, timeout=120, check=False)
    mine = [e for e in calls.read(config, since=start) if e["source"] == "registry"]
    operations = {e["operation"] for e in mine}
    assert {"BatchCheckLayerAvailability", "InitiateLayerUpload", "CompleteLayerUpload", "PutImage"} <= operations
    assert {"BatchGetImage", "GetDownloadUrlForLayer"} <= operations
    assert {e["principal"] for e in mine} == {f"arn:aws:sts::123456789012:assumed-role/{role}/run-7"}
    assert {tuple(e["resources"]) for e in mine} == {(arns.ecr_repository_arn(repo, config.region, config.account_id),)}
    ecr.delete_repository(repositoryName=repo, force=True)

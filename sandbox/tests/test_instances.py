"""What the instances are: EC2 instances in moto with their tags, containers with the tools of
a model host, an instance metadata service; and the CLI that adds and removes them."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from mlops_sandbox import fleetspec
from mlops_sandbox.config import Config

from .conftest import BIN, boto_client, run_on, wait_for


def test_full_instances_carry_a_model_host_toolset(ssm, model_servers):
    out = run_on(
        ssm,
        model_servers[0],
        [
            "docker info --format 'engine {{.ServerVersion}}'",
            "docker run --rm --network none busybox true 2>/dev/null || echo 'no images to pull, as expected'",
            "docker compose version --short",
            "ansible-playbook --version | head -n1",
            "aws --version 2>&1 | cut -d' ' -f1",
            "python3 -c 'import boto3, docker, sys; print(\"sdk\", boto3.__version__, docker.__version__, sys.prefix)'",
            "command -v python3",
            "unzip -v | head -n1",
        ],
    )
    lines = out.splitlines()
    assert lines[0].startswith("engine ")
    assert lines[2].startswith("2.")  # compose v2 plugin
    assert lines[3].startswith("ansible-playbook [core 2.19")
    assert lines[4].startswith("aws-cli/1.")
    assert lines[5].startswith("sdk 1.")
    # `which python3` (the interpreter AWS-ApplyAnsiblePlaybooks gives Ansible) runs Ansible's venv
    assert lines[5].endswith(" /opt/mlops/ansible")
    assert lines[6] == "/usr/local/bin/python3"
    assert lines[7].startswith("UnZip 6.")  # the document unzips bundles


def test_each_full_instance_has_its_own_engine(ssm, model_servers):
    marker = f"sandbox-{uuid.uuid4().hex[:6]}"
    first, second = model_servers[0], model_servers[1]
    run_on(
        ssm,
        first,
        [
            f"docker network create {marker} >/dev/null",
            f"docker network ls --format '{{{{.Name}}}}' | grep -x {marker}",
        ],
    )
    try:
        out = run_on(ssm, second, [f"docker network ls --format '{{{{.Name}}}}' | grep -cx {marker} || true"])
        assert out.strip() == "0"
    finally:
        run_on(ssm, first, [f"docker network rm {marker} >/dev/null"])


def test_instance_metadata_service_imdsv2(ssm, model_servers):
    iid = model_servers[0]
    config = Config()
    base = "http://169.254.169.254/latest"
    out = run_on(
        ssm,
        iid,
        [
            f"curl -s -o /dev/null -w 'no-token %{{http_code}}\\n' {base}/meta-data/instance-id",
            f"T=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' {base}/api/token)",
            f'curl -s -H "X-aws-ec2-metadata-token: $T" {base}/dynamic/instance-identity/document | tr -d "\\n"; echo',
            f'curl -s -H "X-aws-ec2-metadata-token: $T" {base}/meta-data/placement/availability-zone; echo',
            # boto3 on the instance finds the instance profile's credentials there, as on EC2.
            "aws sts get-caller-identity --query Account --output text",
        ],
    )
    lines = out.splitlines()
    assert lines[0] == "no-token 401"
    document = json.loads(lines[1])
    assert (document["instanceId"], document["accountId"], document["region"]) == (
        iid,
        config.account_id,
        config.region,
    )
    assert lines[2].startswith(config.region)
    assert lines[3] == config.account_id


def test_registry_contract_inside_full_instances(ssm, model_servers):
    """The ECR stand-in's host name resolves to the host; its CA (when the registry runs) is trusted."""
    config = Config()
    out = run_on(
        ssm,
        model_servers[0],
        [
            f"getent hosts {config.ecr_host} | cut -d' ' -f1",
            "ip route | awk '/default/ {print $3}'",
            # docker reads certs.d/<host> for port 443, certs.d/<host>:<port> for another.
            f"cat /etc/docker/certs.d/{config.registry_address}/ca.crt 2>/dev/null | sha256sum | cut -c1-16 || true",
        ],
    )
    address, gateway, ca_digest = out.splitlines()
    assert address == gateway  # its network's gateway: the host, where the registry listens (listen.py)
    if config.registry_ca.is_file():
        assert ca_digest == hashlib.sha256(config.registry_ca.read_bytes()).hexdigest()[:16]


def test_instances_cli_adds_lists_and_removes(aws, sandbox_env):
    name = f"cli-{uuid.uuid4().hex[:6]}"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "mlops-sandbox"), "instances", *args],
            env=sandbox_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    added = cli("add", "--kind", "light", "--count", "2", "--name", name, "--env", "qa", "--tag", "team=ml")
    assert added.returncode == 0, added.stderr
    ids = sorted(line.split()[0] for line in added.stdout.splitlines()[1:])
    assert len(ids) == 2
    described = aws("ec2", "describe-instances", "--filters", f"Name=tag:Name,Values={name}", "Name=tag:env,Values=qa")
    found = {i["InstanceId"]: i for r in described["Reservations"] for i in r["Instances"]}
    assert sorted(found) == ids
    tags = {t["Key"]: t["Value"] for t in found[ids[0]]["Tags"]}
    assert tags == {"Name": name, "env": "qa", "team": "ml"}
    # The profile the fleet's one definition names (inventories/local's provision settings).
    assert found[ids[0]]["IamInstanceProfile"]["Arn"].endswith(f"/{fleetspec.load().role}")

    listed = json.loads(cli("list", "--name", name, "--json").stdout)
    assert {(i["instance_id"], i["kind"], i["ping_status"]) for i in listed} == {(i, "light", "Online") for i in ids}

    refused = cli("add", "--kind", "simulated", "--name", name, "--duration", '{"kind": "gamma"}')
    assert refused.returncode == 1
    assert "duration" in refused.stderr
    assert "Traceback" not in refused.stderr

    removed = cli("remove", "--name", name)
    assert removed.returncode == 0, removed.stderr
    assert f"removed {len(ids)} instance(s)" in removed.stdout
    states = aws("ec2", "describe-instances", "--instance-ids", *ids)["Reservations"]
    assert {i["State"]["Name"] for r in states for i in r["Instances"]} == {"terminated"}
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=io.mlops-deploy.instance-id={ids[0]}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == ""
    assert json.loads(cli("list", "--name", name, "--json").stdout) == []


def test_describe_instance_information_filters(ssm, model_servers):
    def ids(**kwargs) -> list[str]:
        pages = ssm.get_paginator("describe_instance_information").paginate(**kwargs)
        return sorted(i["InstanceId"] for p in pages for i in p["InstanceInformationList"])

    assert (
        ids(Filters=[{"Key": "tag:Name", "Values": ["model-server"]}, {"Key": "tag:env", "Values": ["local"]}])
        == model_servers
    )
    assert (
        ids(Filters=[{"Key": "tag-key", "Values": ["env"]}, {"Key": "InstanceIds", "Values": model_servers[:1]}])
        == model_servers[:1]
    )
    legacy = [{"key": "InstanceIds", "valueSet": model_servers[:2]}, {"key": "PingStatus", "valueSet": ["Online"]}]
    assert ids(InstanceInformationFilterList=legacy) == model_servers[:2]
    assert (
        ids(
            Filters=[
                {"Key": "InstanceIds", "Values": model_servers[:1]},
                {"Key": "PingStatus", "Values": ["ConnectionLost"]},
            ]
        )
        == []
    )
    with pytest.raises(ClientError) as err:
        ssm.describe_instance_information(Filters=[{"Key": "Colour", "Values": ["red"]}])
    assert err.value.response["Error"]["Code"] == "InvalidFilterKey"
    with pytest.raises(ClientError) as err:
        ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": ["web-1"]}])
    assert err.value.response["Error"]["Code"] == "InvalidInstanceId"


def test_an_instance_answers_at_its_private_ip_as_in_a_vpc(ssm, model_servers, sandbox_env):
    """EC2's PrivateIpAddress is the container's address on the sandbox network (the
    sandbox's VPC), so the host reaches a port opened on the instance at that address,
    as a CI runner in the VPC reaches an instance."""
    ec2 = boto_client(sandbox_env, "ec2")
    iid = model_servers[0]
    ip = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    container = f"mlops-sb-{Config().name}-{iid}"
    inspect = subprocess.run(
        ["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", container],
        capture_output=True,
        text=True,
        check=True,
    )
    addresses = [net["IPAddress"] for net in json.loads(inspect.stdout).values()]
    assert addresses == [ip]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(Config().vpc_cidr)

    token = uuid.uuid4().hex
    run_on(
        ssm,
        iid,
        [
            f"mkdir -p /tmp/{token} && echo {token} > /tmp/{token}/index.html",
            f"cd /tmp/{token} && (nohup python3 -m http.server 18089 >/dev/null 2>&1 &)",
        ],
    )
    try:
        body = wait_for(lambda: _http_get(f"http://{ip}:18089/index.html"), 30, f"http server on {ip}:18089")
        assert body.strip() == token
    finally:
        run_on(ssm, iid, ["pkill -f 'http.server 18089' || true"])


def _http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - a sandbox address
            return resp.read().decode()
    except OSError:
        return None

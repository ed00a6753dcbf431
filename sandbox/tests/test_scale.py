"""Fleets: 120 light instances by tag, paginated the way AWS paginates; simulated fleets
that look like real instances through the API."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import invocations, wait_command

SCALE = 120


@pytest.fixture(scope="module")
def scale_fleet(control):
    name = f"scale-{uuid.uuid4().hex[:6]}"
    with control.fleet("light", SCALE, name=name, env="test") as found:
        yield name, sorted(i["instance_id"] for i in found)


def test_120_instances_by_tag_with_pagination(aws, ssm, control, scale_fleet):
    name, ids = scale_fleet
    command_id = aws(
        "ssm",
        "send-command",
        "--document-name",
        "AWS-RunShellScript",
        "--targets",
        f"Key=tag:Name,Values={name}",
        "--parameters",
        json.dumps({"commands": ["hostname"]}),
    )["Command"]["CommandId"]
    command = wait_command(ssm, command_id, timeout=180)
    assert (command["Status"], command["TargetCount"], command["CompletedCount"]) == ("Success", SCALE, SCALE)

    control.reset_calls()
    # The CLI follows NextToken itself: 50 per page -> 3 calls for 120 invocations.
    listed = aws("ssm", "list-command-invocations", "--command-id", command_id, "--page-size", "50")
    assert sorted(inv["InstanceId"] for inv in listed["CommandInvocations"]) == ids
    assert control.calls()["calls"] == {"ListCommandInvocations": 3}

    first = aws("ssm", "list-command-invocations", "--command-id", command_id, "--max-items", "50")
    assert len(first["CommandInvocations"]) == 50
    rest = aws("ssm", "list-command-invocations", "--command-id", command_id, "--starting-token", first["NextToken"])[
        "CommandInvocations"
    ]
    assert len(rest) == SCALE - 50
    assert {i["InstanceId"] for i in first["CommandInvocations"]}.isdisjoint(i["InstanceId"] for i in rest)

    control.reset_calls()
    info = aws("ssm", "describe-instance-information", "--filters", f"Key=tag:Name,Values={name}", "--page-size", "50")[
        "InstanceInformationList"
    ]
    assert sorted(i["InstanceId"] for i in info) == ids
    assert {i["PingStatus"] for i in info} == {"Online"}
    assert control.calls()["calls"] == {"DescribeInstanceInformation": 3}


def test_instance_properties_list_a_thousand_a_page(ssm, control, scale_fleet):
    """DescribeInstanceProperties: the same nodes as DescribeInstanceInformation, up to 1,000
    a page; filters narrow it; a page size outside 5-1000 and an unknown key are refused."""
    name, ids = scale_fleet
    control.reset_calls()
    answer = ssm.describe_instance_properties(MaxResults=1000)
    listed = {p["InstanceId"]: p for p in answer["InstanceProperties"]}
    assert set(ids) <= set(listed)
    assert "NextToken" not in answer
    assert control.calls()["calls"] == {"DescribeInstanceProperties": 1}
    assert {listed[i]["Name"] for i in ids} == {name}
    assert {listed[i]["PingStatus"] for i in ids} == {"Online"}

    first = ssm.describe_instance_properties(MaxResults=100)
    rest = ssm.describe_instance_properties(MaxResults=1000, NextToken=first["NextToken"])
    assert len(first["InstanceProperties"]) == 100
    assert {p["InstanceId"] for p in first["InstanceProperties"] + rest["InstanceProperties"]} == set(listed)

    chosen = ssm.describe_instance_properties(InstancePropertyFilterList=[{"key": "InstanceIds", "valueSet": ids[:3]}])[
        "InstanceProperties"
    ]
    assert sorted(p["InstanceId"] for p in chosen) == ids[:3]
    lost = ssm.describe_instance_properties(
        FiltersWithOperator=[{"Key": "PingStatus", "Values": ["Online"], "Operator": "NotEqual"}]
    )["InstanceProperties"]
    assert not set(ids) & {p["InstanceId"] for p in lost}

    for bad, code in (
        ({"MaxResults": 1001}, "ValidationException"),
        ({"InstancePropertyFilterList": [{"key": "ResourceType", "valueSet": ["EC2Instance"]}]}, "InvalidFilterKey"),
    ):
        with pytest.raises(ssm.exceptions.ClientError) as caught:
            ssm.describe_instance_properties(**bad)
        assert caught.value.response["Error"]["Code"] == code, bad


def test_simulated_instances_look_like_real_ones(ssm, control, scale_fleet):
    _name, real_ids = scale_fleet
    name = f"sim-{uuid.uuid4().hex[:6]}"
    with control.fleet(
        "simulated",
        200,
        name=name,
        env="bench",
        duration={"kind": "uniform", "low": 0.5, "high": 2},
        failure_share=0.1,
        seed=3,
    ) as sims:
        sim_ids = [i["instance_id"] for i in sims]
        real = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": real_ids[:1]}])
        fake = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": sim_ids[:1]}])
        real_info, sim_info = real["InstanceInformationList"][0], fake["InstanceInformationList"][0]
        assert set(real_info) == set(sim_info)
        assert sim_info["PingStatus"] == "Online"

        command_id = ssm.send_command(
            Targets=[{"Key": "tag:Name", "Values": [name]}, {"Key": "tag:env", "Values": ["bench"]}],
            DocumentName="AWS-ApplyAnsiblePlaybooks",
            Parameters={"SourceType": ["S3"], "SourceInfo": ['{"path": "https://b.s3.amazonaws.com/site.yml"}']},
            MaxErrors="100%",
        )["Command"]["CommandId"]
        command = wait_command(ssm, command_id, timeout=120)
        found = invocations(ssm, command_id)
        failed = [i for i in found.values() if i["Status"] == "Failed"]
        # ~10% fail (seeded); within MaxErrors the command is AWS's Success/Incomplete.
        assert 8 <= len(failed) <= 35
        assert (command["Status"], command["StatusDetails"]) == ("Success", "Incomplete")
        assert (command["TargetCount"], command["ErrorCount"]) == (200, len(failed))
        sample = failed[0]
        assert [p["Name"] for p in sample["CommandPlugins"]] == ["downloadContent", "runShellScript"]
        assert sample["CommandPlugins"][1]["ResponseCode"] == 1
        assert "PLAY RECAP" in sample["CommandPlugins"][1]["Output"]
        real_inv = ssm.list_command_invocations(InstanceId=real_ids[0], Details=True)["CommandInvocations"][0]
        assert set(real_inv) == set(sample)
    assert control.instances(name=name) == []

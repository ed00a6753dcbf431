"""eventbridge_ecs_target's rules: the target put on a rule, and whether AWS already has it
(compared with what ListTargetsByRule echoes, which leaves out empty values)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _ecs_task as et
from ansible_collections.mlops.deploy.plugins.module_utils import _eventbridge as eb

TASK_DEFINITION = {
    "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/titanic-train-on-push:3",
    "networkMode": "awsvpc",
    "containerDefinitions": [{"name": "train", "essential": True}],
}
CLUSTER = "arn:aws:ecs:eu-west-1:123456789012:cluster/training"
PARAMS = {
    "rule": "titanic-train-on-push",
    "target_id": "train",
    "task_definition": "titanic-train-on-push",
    "role_arn": "arn:aws:iam::123456789012:role/train-events",
    "task_count": 1,
    "launch_type": "FARGATE",
    "network_configuration": {"subnets": ["subnet-1"], "security_groups": [], "assign_public_ip": False},
    "environment_from_event": {"IMAGE_DIGEST": "$.detail.image-digest", "IMAGE_TAG": "$.detail.image-tag"},
    "tags": {},
}
# What moto's ListTargetsByRule answered for the target PutTargets was given (train_trigger.yml).
LISTED = {
    "Id": "train",
    "Arn": CLUSTER,
    "RoleArn": "arn:aws:iam::123456789012:role/train-events",
    "EcsParameters": {
        "TaskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/titanic-train-on-push",
        "TaskCount": 1,
        "LaunchType": "FARGATE",
        "NetworkConfiguration": {"awsvpcConfiguration": {"Subnets": ["subnet-1"], "AssignPublicIp": "DISABLED"}},
    },
    "InputTransformer": {
        "InputPathsMap": {"image_digest": "$.detail.image-digest", "image_tag": "$.detail.image-tag"},
        "InputTemplate": '{"containerOverrides":[{"name":"train","environment":[{"name":"IMAGE_DIGEST",'
        '"value":"<image_digest>"},{"name":"IMAGE_TAG","value":"<image_tag>"}]}]}',
    },
}


def test_the_target_of_a_family_runs_its_latest_revision_with_the_event_in_the_environment():
    target = eb.ecs_target(PARAMS, CLUSTER, TASK_DEFINITION)
    assert target["EcsParameters"]["TaskDefinitionArn"].endswith("task-definition/titanic-train-on-push")
    assert target["EcsParameters"]["NetworkConfiguration"]["awsvpcConfiguration"] == {
        "Subnets": ["subnet-1"],
        "SecurityGroups": [],
        "AssignPublicIp": "DISABLED",
    }
    template = json.loads(target["InputTransformer"]["InputTemplate"])
    assert template == {
        "containerOverrides": [
            {
                "name": "train",
                "environment": [
                    {"name": "IMAGE_DIGEST", "value": "<image_digest>"},
                    {"name": "IMAGE_TAG", "value": "<image_tag>"},
                ],
            }
        ]
    }
    assert eb.same_target(LISTED, target)


def test_a_revision_is_pinned_and_any_difference_is_a_change():
    target = eb.ecs_target(dict(PARAMS, task_definition="titanic-train-on-push:3"), CLUSTER, TASK_DEFINITION)
    assert target["EcsParameters"]["TaskDefinitionArn"].endswith(":3")
    assert not eb.same_target(LISTED, target)
    other = eb.ecs_target(dict(PARAMS, network_configuration={"subnets": ["subnet-2"]}), CLUSTER, TASK_DEFINITION)
    assert not eb.same_target(LISTED, other)
    assert not eb.same_target(None, other)


def test_constant_input_and_a_hand_written_transformer():
    constant = dict(
        PARAMS, environment_from_event=None, input={"containerOverrides": [{"name": "train", "command": ["x"]}]}
    )
    assert json.loads(eb.ecs_target(constant, CLUSTER, TASK_DEFINITION)["Input"])["containerOverrides"][0][
        "command"
    ] == ["x"]
    transformer = dict(
        PARAMS,
        environment_from_event=None,
        input_transformer={"input_paths_map": {"d": "$.detail.image-digest"}, "input_template": '{"a": "<d>"}'},
    )
    assert eb.ecs_target(transformer, CLUSTER, TASK_DEFINITION)["InputTransformer"] == {
        "InputPathsMap": {"d": "$.detail.image-digest"},
        "InputTemplate": '{"a": "<d>"}',
    }


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"environment_from_event": {"bad-name": "$.x"}}, eb.EventBridgeError, "'bad-name' is not a valid environment"),
        ({"environment_from_event": {"X": "detail.x"}}, eb.EventBridgeError, "must be a JSON path into the event"),
        ({"container": "nope"}, et.TaskError, "follow_container 'nope' is not a container"),
        ({"input": "{not json", "environment_from_event": None}, eb.EventBridgeError, "input must be JSON"),
        ({"network_configuration": None}, eb.EventBridgeError, "awsvpc network mode"),
        (
            {"input": {"a": 1}},
            eb.EventBridgeError,
            "give only one of input, input_transformer and environment_from_event",
        ),
    ],
)
def test_bad_targets_say_what_to_fix(change, error, message):
    with pytest.raises(error, match=message):
        eb.ecs_target(dict(PARAMS, **change), CLUSTER, TASK_DEFINITION)


def test_event_patterns_compare_as_json():
    pattern = eb.event_pattern({"source": ["aws.ecr"], "detail-type": ["ECR Image Action"]})
    assert eb.same_pattern('{"detail-type": ["ECR Image Action"], "source": ["aws.ecr"]}', pattern)
    assert not eb.same_pattern('{"source": ["aws.s3"]}', pattern)
    with pytest.raises(eb.EventBridgeError, match="not valid JSON"):
        eb.event_pattern("{")
    with pytest.raises(eb.EventBridgeError, match="non-empty mapping"):
        eb.event_pattern({})


@pytest.mark.parametrize(("name", "ok"), [("train", True), ("a" * 64, True), ("a" * 65, False), ("bad name", False)])
def test_names(name, ok):
    params = dict(PARAMS, rule=name)
    if ok:
        eb.check_names(params)
    else:
        with pytest.raises(eb.EventBridgeError, match="must be 1 to 64 letters"):
            eb.check_names(params)

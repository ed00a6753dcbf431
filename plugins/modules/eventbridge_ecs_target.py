#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: eventbridge_ecs_target
short_description: An EventBridge rule that runs an ECS task (Fargate included), with its input
version_added: 0.1.0
description:
  - "Puts one ECS task target, identified by O(target_id), on an EventBridge rule, with the whole
    of EventBridge's ECS parameters: launch type or capacity providers, the C(awsvpc) network
    configuration a Fargate task needs, platform version, tags, and the target's input, which
    becomes the task's overrides."
  - "O(environment_from_event) sets environment variables of one container from the event (an
    input transformer built for you), for example the digest and tag of the image an
    C(ECR Image Action) event announces: C({IMAGE_DIGEST: $.detail.image-digest})."
  - With O(event_pattern), the rule itself is created or updated (C(PutRule)) when it differs;
    without it, the rule must exist.
  - "Unlike M(amazon.aws.cloudwatchevent_rule), whose ECS target takes only a task definition and
    a count (no network configuration, so no Fargate task) and which replaces every target of a
    rule with its own list, this module leaves the rule's other targets alone."
  - Idempotent; check mode and diff mode show what would change.
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  rule:
    description: The rule's name.
    type: str
    required: true
  event_bus_name:
    description: The event bus of the rule.
    type: str
    default: default
  event_pattern:
    description:
      - The rule's event pattern, a mapping (or its JSON). Given, the rule is created or updated to it;
        omitted, the rule must exist and is left as it is.
    type: raw
  description:
    description: The rule's description (with O(event_pattern)).
    type: str
  enabled:
    description: Whether the rule is enabled (with O(event_pattern)).
    type: bool
    default: true
  state:
    description:
      - V(present) puts the target; V(absent) removes it (not the rule).
    type: str
    choices: [present, absent]
    default: present
  target_id:
    description: The target's ID on the rule.
    type: str
    required: true
  cluster:
    description: The cluster the task runs on, a name or ARN. Required with O(state=present).
    type: str
  task_definition:
    description:
      - The task definition. C(family:revision) or a revision's ARN runs that revision; a bare family
        runs its latest C(ACTIVE) revision at each event. Required with O(state=present).
    type: str
  role_arn:
    description:
      - The role EventBridge runs the task as (trusting C(events.amazonaws.com)), with
        C(ecs:RunTask) on the task definition and C(iam:PassRole) on its task role and execution
        role. Required with O(state=present).
    type: str
  task_count:
    description: How many tasks each event starts.
    type: int
    default: 1
  group:
    description: The task group.
    type: str
  propagate_tags:
    description: Copy the task definition's tags to the task.
    type: str
    choices: [TASK_DEFINITION]
  enable_ecs_managed_tags:
    description: Let ECS tag the task with its cluster and service.
    type: bool
    default: false
  tags:
    description: Tags of the tasks started (the role then needs C(ecs:TagResource)).
    type: dict
    default: {}
  input:
    description:
      - "Constant input, the task's overrides as the ECS API takes them (a mapping or its JSON), for
        example C({containerOverrides: [{name: train, command: [...]}]})."
      - Only one of O(input), O(input_transformer) and O(environment_from_event).
    type: raw
  input_transformer:
    description: EventBridge's input transformer, whose output is the task's overrides.
    type: dict
    suboptions:
      input_paths_map:
        description: Names to JSON paths into the event.
        type: dict
        default: {}
      input_template:
        description: The overrides' JSON with C(<name>) placeholders.
        type: str
        required: true
  environment_from_event:
    description:
      - "Environment variables of O(container) taken from the event, as C(NAME: $.json.path). Builds the
        input transformer C({\"containerOverrides\": [{\"name\": <container>, \"environment\": [...]}]})."
    type: dict
  container:
    description:
      - The container O(environment_from_event) sets variables of; the task definition's first
        essential container when omitted.
    type: str
  retry_policy:
    description: How long and how often EventBridge retries a failed RunTask.
    type: dict
    suboptions:
      maximum_retry_attempts:
        description: Retries (0 to 185).
        type: int
      maximum_event_age_in_seconds:
        description: Seconds an event is retried for (60 to 86400).
        type: int
  dead_letter_arn:
    description: An SQS queue for the events whose RunTask failed.
    type: str
notes:
  - "IAM: C(events:DescribeRule), C(events:PutRule) (with O(event_pattern)), C(events:ListTargetsByRule),
    C(events:PutTargets), C(events:RemoveTargets), C(ecs:DescribeClusters), C(ecs:DescribeTaskDefinition),
    and C(iam:PassRole) on O(role_arn)."
attributes:
  check_mode:
    support: full
    description: Says what would change, and changes nothing.
  diff_mode:
    support: full
    description: The rule and the target before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
extends_documentation_fragment:
  - mlops.deploy.ecs_placement
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: mlops.deploy.ecs_run_task
  - module: amazon.aws.cloudwatchevent_rule
  - name: Amazon ECR events and EventBridge
    description: The C(ECR Image Action) event of each push.
    link: https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-eventbridge.html
"""

EXAMPLES = r"""
- name: Train on Fargate each time an image lands in the training repository (no Lambda)
  mlops.deploy.eventbridge_ecs_target:
    rule: titanic-train-on-push
    description: Run titanic-train for each push of titanic-train:latest
    event_pattern:
      source: [aws.ecr]
      detail-type: [ECR Image Action]
      detail:
        action-type: [PUSH]
        result: [SUCCESS]
        repository-name: [titanic-train]
        image-tag: [latest]
    target_id: train
    cluster: training
    task_definition: titanic-train
    role_arn: arn:aws:iam::123456789012:role/titanic-train-events
    launch_type: FARGATE
    network_configuration:
      subnets: [subnet-0123456789abcdef0]
      security_groups: [sg-0123456789abcdef0]
    environment_from_event:
      IMAGE_DIGEST: $.detail.image-digest
      IMAGE_TAG: $.detail.image-tag

- name: The same target with a hand-written input transformer
  mlops.deploy.eventbridge_ecs_target:
    rule: titanic-train-on-push
    target_id: train
    cluster: training
    task_definition: titanic-train
    role_arn: arn:aws:iam::123456789012:role/titanic-train-events
    launch_type: FARGATE
    network_configuration:
      subnets: [subnet-0123456789abcdef0]
    input_transformer:
      input_paths_map:
        digest: $.detail.image-digest
      input_template: >-
        {"containerOverrides": [{"name": "train",
        "command": ["--output", "s3://acme-models/titanic/", "--version", "<digest>"]}]}

- name: Remove the target (the rule stays)
  mlops.deploy.eventbridge_ecs_target:
    rule: titanic-train-on-push
    target_id: train
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the rule or the target was (or, in check mode, would be) changed.
  returned: always
  type: bool
rule_arn:
  description: The rule's ARN (V(null) in check mode before it exists).
  returned: always
  type: str
target:
  description: The target as put on the rule (PutTargets' shape); V(null) with O(state=absent).
  returned: always
  type: dict
  sample:
    Id: train
    Arn: arn:aws:ecs:eu-west-1:123456789012:cluster/training
    RoleArn: arn:aws:iam::123456789012:role/titanic-train-events
    EcsParameters:
      TaskDefinitionArn: arn:aws:ecs:eu-west-1:123456789012:task-definition/titanic-train
      TaskCount: 1
      LaunchType: FARGATE
    InputTransformer:
      InputPathsMap: {image_digest: $.detail.image-digest}
      InputTemplate: >-
        {"containerOverrides":[{"name":"train","environment":[{"name":"IMAGE_DIGEST","value":"<image_digest>"}]}]}
diff:
  description: The rule and target before and after (with C(--diff)).
  returned: always
  type: dict
"""

import copy

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.mlops.deploy.plugins.module_utils._ecs_task import PLACEMENT_SPEC, TaskError
from ansible_collections.mlops.deploy.plugins.module_utils._ecs_task_run import retry_decorator
from ansible_collections.mlops.deploy.plugins.module_utils._eventbridge import EventBridgeError, EventsApi, ensure


def main():
    argument_spec = {
        "rule": {"type": "str", "required": True},
        "event_bus_name": {"type": "str", "default": "default"},
        "event_pattern": {"type": "raw"},
        "description": {"type": "str"},
        "enabled": {"type": "bool", "default": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "target_id": {"type": "str", "required": True},
        "cluster": {"type": "str"},
        "task_definition": {"type": "str"},
        "role_arn": {"type": "str"},
        "task_count": {"type": "int", "default": 1},
        **copy.deepcopy(PLACEMENT_SPEC),
        "group": {"type": "str"},
        "propagate_tags": {"type": "str", "choices": ["TASK_DEFINITION"]},
        "enable_ecs_managed_tags": {"type": "bool", "default": False},
        "tags": {"type": "dict", "default": {}},
        "input": {"type": "raw"},
        "input_transformer": {
            "type": "dict",
            "options": {
                "input_paths_map": {"type": "dict", "default": {}},
                "input_template": {"type": "str", "required": True},
            },
        },
        "environment_from_event": {"type": "dict"},
        "container": {"type": "str"},
        "retry_policy": {
            "type": "dict",
            "options": {"maximum_retry_attempts": {"type": "int"}, "maximum_event_age_in_seconds": {"type": "int"}},
        },
        "dead_letter_arn": {"type": "str"},
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[["state", "present", ["cluster", "task_definition", "role_arn"]]],
        mutually_exclusive=[
            ["launch_type", "capacity_provider_strategy"],
            ["input", "input_transformer", "environment_from_event"],
        ],
    )
    retry = retry_decorator()
    api = EventsApi(module.client("events", retry_decorator=retry), module.client("ecs", retry_decorator=retry))
    try:
        result = ensure(api, module.params, module.check_mode)
    except (EventBridgeError, TaskError) as exc:
        module.fail_json(msg=str(exc))
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="EventBridge call failed for rule %s" % module.params["rule"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()

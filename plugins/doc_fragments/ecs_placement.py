# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation fragment: where and how an ECS task is placed (ecs_run_task, eventbridge_ecs_target).

The options' argument spec is ``_ecs_task.PLACEMENT_SPEC``; the two stay together.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  launch_type:
    description:
      - Where the task runs. Mutually exclusive with O(capacity_provider_strategy); with neither,
        the cluster's default capacity provider strategy applies.
    type: str
    choices: [FARGATE, EC2, EXTERNAL]
  capacity_provider_strategy:
    description:
      - The capacity providers to place the task with, for example C(FARGATE_SPOT).
    type: list
    elements: dict
    suboptions:
      capacity_provider:
        description: The capacity provider's name.
        type: str
        required: true
      weight:
        description: Its relative weight.
        type: int
      base:
        description: How many tasks at least it runs.
        type: int
  platform_version:
    description:
      - The Fargate platform version (C(LATEST) when omitted).
    type: str
  network_configuration:
    description:
      - The task's network interface, needed by task definitions in the C(awsvpc) network mode
        (every Fargate task).
    type: dict
    suboptions:
      subnets:
        description: The subnets (IDs) the task may run in.
        type: list
        elements: str
        required: true
      security_groups:
        description: The security groups (IDs) of its network interface.
        type: list
        elements: str
        default: []
      assign_public_ip:
        description:
          - Give the task a public IP address. Without one, a task in a private subnet needs a NAT
            gateway or VPC endpoints (ECR, S3, CloudWatch Logs) to pull its image and send its logs.
        type: bool
        default: false
"""

#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_exec_info
short_description: Tell whether ECS Exec works for a service's tasks, and how to open a shell in one
version_added: 0.1.0
description:
  - Reads an ECS service, its task definition and its running tasks, and reports what
    C(aws ecs execute-command) needs that the API can show (what amazon-ecs-exec-checker
    checks from the API) - the service's C(enableExecuteCommand), the task role, for each
    running task its C(enableExecuteCommand) flag and the state of the C(ExecuteCommandAgent)
    of each container.
  - Reports whether the service's rollout settled on its primary deployment (one deployment,
    rollout COMPLETED, only tasks started by that deployment, as many as desired), so a play
    can wait with C(until) until the tasks are the new ones.
  - Returns the exact C(aws ecs execute-command ... --interactive --command /bin/sh) line for
    the first task that is ready.
  - Read-only; RV(ignore:changed) is always V(false). The ssmmessages permissions of the task
    role and the SSM Session Manager plugin on the client are not visible here.
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  cluster:
    description:
      - Name or ARN of the ECS cluster.
    type: str
    required: true
  service:
    description:
      - Name or ARN of the ECS service.
    type: str
    required: true
  container:
    description:
      - Container to open the shell in, for RV(command). Defaults to the task definition's first container.
    type: str
extends_documentation_fragment:
  - mlops.deploy.attributes.read_only
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Wait until the service's tasks are the new ones, each with ECS Exec on
  mlops.deploy.ecs_exec_info:
    cluster: models
    service: model-a
  register: exec_info
  until: exec_info.rollout.settled and exec_info.all_tasks_ready
  retries: 60
  delay: 10

- name: How to get a shell in one task
  ansible.builtin.debug:
    msg: "{{ exec_info.command }}"
"""

RETURN = r"""
service_exec_enabled:
  description: Whether the service has C(enableExecuteCommand).
  returned: always
  type: bool
task_definition_arn:
  description: The service's task definition.
  returned: always
  type: str
task_role_arn:
  description: The task definition's task role (ECS Exec needs one, with the ssmmessages actions).
  returned: always
  type: str
  sample: arn:aws:iam::123456789012:role/model-a-task
task_role_name:
  description: The name of that role.
  returned: always
  type: str
container:
  description: The container RV(command) opens a shell in.
  returned: always
  type: str
rollout:
  description: Whether the service settled on its primary deployment.
  returned: always
  type: dict
  contains:
    deployment_id:
      description: The primary deployment (its tasks carry it as C(startedBy)).
      type: str
    desired_count:
      description: Tasks the service wants.
      type: int
    running_new:
      description: Running tasks started by the primary deployment.
      type: int
    running_old:
      description: Running tasks of older deployments.
      type: int
    settled:
      description: One deployment, rollout COMPLETED, only its tasks running, as many as desired.
      type: bool
    waiting_for:
      description: Why it has not settled yet.
      type: list
      elements: str
tasks:
  description: One entry per running task.
  returned: always
  type: list
  elements: dict
  contains:
    task_arn:
      description: The task.
      type: str
    task_id:
      description: Its ID.
      type: str
    last_status:
      description: Its last status.
      type: str
    started_by:
      description: The deployment that started it.
      type: str
    enable_execute_command:
      description: Whether the task was started with ECS Exec on.
      type: bool
    exec_agents:
      description: Container name to the C(ExecuteCommandAgent) state (null when absent).
      type: dict
    ready:
      description: Whether C(execute-command) can open a shell in it.
      type: bool
    problems:
      description: Why not.
      type: list
      elements: str
all_tasks_ready:
  description: There are running tasks and every one is ready.
  returned: always
  type: bool
command:
  description: The C(aws ecs execute-command) line for the first ready task; null when none is.
  returned: always
  type: str
  sample: >-
    aws ecs execute-command --cluster models --task arn:aws:ecs:eu-west-1:123456789012:task/models/0a1b
    --container api --interactive --command /bin/sh
service:
  description: The service as DescribeServices returns it, in snake_case.
  returned: always
  type: dict
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.mlops.deploy.plugins.module_utils._ecs_exec import ExecError, ExecInspector


def main():
    argument_spec = {
        "cluster": {"type": "str", "required": True},
        "service": {"type": "str", "required": True},
        "container": {"type": "str"},
    }
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    client = module.client("ecs", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    params = module.params
    try:
        result = ExecInspector(client).inspect(params["cluster"], params["service"], params["container"], module.region)
    except ExecError as exc:
        module.fail_json(msg=str(exc))
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg=f"could not read service {params['service']} of cluster {params['cluster']}")
    result["service"] = camel_dict_to_snake_dict(result["service"], ignore_list=["tags"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_run_task
short_description: Run a one-off ECS task (a training job), follow its log, return its exit codes
version_added: 0.1.0
description:
  - Runs one task of a task definition on an ECS cluster (C(RunTask)), follows it to its end
    with its own polling (no 10-minute limit), prints its status changes and the log lines of
    one of its containers as they arrive, and returns each container's exit code, the task's
    C(stopCode) and C(stoppedReason), its start and stop times and the last log lines.
  - "Before anything is started: the options are checked, the cluster must exist and be
    C(ACTIVE) (C(ecs:DescribeClusters)), the task definition is resolved
    (C(ecs:DescribeTaskDefinition)) and every container override must name one of its
    containers. Bad input fails with a message that says what to fix, and nothing runs."
  - "The log followed is the container's awslogs stream, read from its C(logConfiguration):
    group C(awslogs-group), stream C(<awslogs-stream-prefix>/<container>/<task id>) (the
    container's runtime id when there is no prefix), region C(awslogs-region). It is read with
    C(logs:GetLogEvents) and its forward token: one call brings every line since the last one.
    Reads come 1.5 s after a read that brought lines, backing off to 3 s while the stream is
    quiet; C(ecs:DescribeTasks) every second until the task runs, then backing off to
    O(poll_max_interval) while nothing changes, and again soon after the log goes quiet."
  - "The task fails the module when it failed to start (stopCode C(TaskFailedToStart), or a
    stoppedReason such as C(CannotPullContainerError) or C(ResourceInitializationError)),
    when an essential container exited with a code other than 0, when an essential container
    stopped without an exit code, or when something else stopped it (C(UserInitiated),
    C(SpotInterruption), ...). The message names the container and the reason first, then
    the last lines of the followed container. A non-essential container's exit code is
    returned but does not fail the task, as ECS does not stop the task for it."
  - "When O(timeout) passes, the task is stopped (C(ecs:StopTask) with a reason saying so; ECS
    sends SIGTERM, then SIGKILL after the container's C(stopTimeout)), followed until it
    stopped, and the module fails saying it timed out."
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  cluster:
    description:
      - The cluster to run the task on, a name or an ARN.
    type: str
    default: default
  task_definition:
    description:
      - The task definition to run, as C(family) (its latest C(ACTIVE) revision), C(family:revision)
        or its ARN.
      - Exactly one of O(task_definition) and O(task_arn) is required.
    type: str
  task_arn:
    description:
      - "Follow this task instead of running one, for example a task an EventBridge rule started:
        its status, its log from the first line, its exit codes and the same verdict, with
        RV(changed=false). The options that shape a new task (overrides, network, launch type,
        tags, started_by, group) cannot go with it."
      - When O(timeout) passes, such a task is left running (it was not started here) and the
        module fails saying so.
    type: str
  container_overrides:
    description:
      - Changes to some of the task definition's containers for this run. Each entry names a
        container of the task definition (any other name is an error, before anything runs).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The container's name.
        type: str
        required: true
      command:
        description: The command, replacing the definition's (each argument a string).
        type: list
        elements: str
      environment:
        description:
          - Environment variables added to (or replacing those of) the definition, as a mapping of
            names to values, or a list of C({name, value}) as the ECS API takes them.
        type: raw
      cpu:
        description: CPU units for the container.
        type: int
      memory:
        description: The container's hard memory limit, in MiB.
        type: int
      memory_reservation:
        description: The container's soft memory limit, in MiB.
        type: int
  tags:
    description:
      - Tags of the task (C(ecs:TagResource) is needed with them).
    type: dict
    default: {}
  propagate_tags:
    description:
      - Copy the task definition's tags to the task.
    type: str
    choices: [TASK_DEFINITION, SERVICE, NONE]
  started_by:
    description:
      - The task's C(startedBy) (at most 36 characters), for example the CI job; tasks can be
        listed by it.
    type: str
  group:
    description:
      - The task group (C(family:<family>) when omitted).
    type: str
  wait:
    description:
      - Follow the task to its end. V(false) returns as soon as the task was started, with its ARN
        and log stream, and reports V(changed).
    type: bool
    default: true
  timeout:
    description:
      - Seconds the task may take from RunTask to its end; then it is stopped and the module fails.
        Any positive number (no 10-minute cap).
    type: int
    default: 3600
  follow_container:
    description:
      - The container whose log lines are printed and returned, and whose exit code is
        RV(exit_code). Defaults to the task definition's first essential container.
    type: str
  follow_logs:
    description:
      - Read the followed container's awslogs stream while the task runs. V(false) follows only
        the status (no C(logs:GetLogEvents) calls; RV(log_lines) stays empty).
    type: bool
    default: true
  tail_lines:
    description:
      - How many of the last log lines to return in RV(log_lines).
    type: int
    default: 20
  poll_max_interval:
    description:
      - The longest pause, in seconds, between two C(DescribeTasks) calls while the task runs.
    type: float
    default: 10.0
notes:
  - "This module runs on the controller through an action plugin of the same name, which prints
    the task's progress while it waits: use it in a play on V(localhost) (or with
    C(run_once: true)). Region, profile, endpoint_url, credentials, their environment variables,
    the task's C(environment) and C(module_defaults) of the C(group/mlops.deploy.aws) action
    group work as for every amazon.aws module. Without the action plugin, the module does the
    same work and prints nothing."
  - "On AWS, the awslogs driver sends a container's lines to CloudWatch in batches every few
    seconds: a line shows up that much later than it was printed, whatever the module does."
  - "IAM: C(ecs:DescribeClusters), C(ecs:DescribeTaskDefinition), C(ecs:RunTask),
    C(ecs:DescribeTasks), C(ecs:StopTask) (at the timeout), C(iam:PassRole) on the task
    definition's task role and execution role, C(logs:GetLogEvents) on the log group;
    C(ecs:TagResource) with O(tags)."
  - The C(async) keyword is not supported (the work happens on the controller); use O(timeout) or O(wait).
attributes:
  check_mode:
    support: full
    description: Check mode checks the options, the cluster, the task definition and the overrides; nothing runs.
  diff_mode:
    support: none
    description: Returns details on what changed.
  idempotent:
    support: none
    description: Each run starts a new task; it always reports V(changed) (but with O(task_arn), which only follows).
  action:
    support: full
    description: Runs on the controller through an action plugin of the same name, which prints progress.
  async:
    support: none
    description: Not usable with the C(async) keyword.
extends_documentation_fragment:
  - mlops.deploy.ecs_placement
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: mlops.deploy.cloudwatch_tail
  - module: community.aws.ecs_taskdefinition
  - name: Amazon ECS task lifecycle
    description: The statuses a task goes through.
    link: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html
  - name: Amazon ECS stopped task errors
    description: What stoppedReason says and what to do about it.
    link: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html
"""

EXAMPLES = r"""
# In a play on localhost; module_defaults can set region and profile for every AWS module:
#   module_defaults:
#     group/mlops.deploy.aws: {region: eu-west-1, profile: prod}

- name: Train the model on Fargate, with its log lines in the play's output
  mlops.deploy.ecs_run_task:
    cluster: training
    task_definition: titanic-train
    launch_type: FARGATE
    network_configuration:
      subnets: [subnet-0123456789abcdef0]
      security_groups: [sg-0123456789abcdef0]
    container_overrides:
      - name: train
        environment:
          MODEL_VERSION: titanic-logreg-7
          OUTPUT: s3://acme-models/titanic/titanic-logreg-7.json
    started_by: ci-184467
    timeout: 7200
  register: training

- name: Say how it went
  ansible.builtin.debug:
    msg: "{{ training.task_id }}: exit {{ training.exit_code }} after {{ training.duration }}s"

- name: Start a task and do not wait for it
  mlops.deploy.ecs_run_task:
    cluster: training
    task_definition: titanic-train:7
    launch_type: FARGATE
    network_configuration:
      subnets: [subnet-0123456789abcdef0]
    wait: false
  register: started

- name: Check that the run would be accepted (the overrides name real containers); runs nothing
  mlops.deploy.ecs_run_task:
    cluster: training
    task_definition: titanic-train
    capacity_provider_strategy:
      - capacity_provider: FARGATE_SPOT
        weight: 1
    network_configuration:
      subnets: [subnet-0123456789abcdef0]
    container_overrides:
      - name: train
        command: ["python3", "train.py", "--epochs", "3"]
  check_mode: true

- name: Follow a training task an EventBridge rule started (its log from the first line, its exit code)
  mlops.deploy.ecs_run_task:
    cluster: training
    task_arn: arn:aws:ecs:eu-west-1:123456789012:task/training/5e1d0c3b2a1f4e8d9c7b6a5f4e3d2c1b
  register: triggered

- name: A failed training run shows why and its last lines; look at the whole result
  block:
    - name: Train
      mlops.deploy.ecs_run_task:
        cluster: training
        task_definition: titanic-train
        launch_type: FARGATE
        network_configuration:
          subnets: [subnet-0123456789abcdef0]
  rescue:
    - name: Exit codes, stop code and the last lines
      ansible.builtin.debug:
        msg: "{{ ansible_failed_result.containers | map(attribute='exit_code') }} {{ ansible_failed_result.stop_code }}"
"""

RETURN = r"""
changed:
  description: True when a task was started (and in check mode, where it would be); false with O(task_arn).
  returned: always
  type: bool
msg:
  description: What happened, in one sentence; on failure the reason first, then the followed container's last lines.
  returned: always
  type: str
  sample: "task 5e1d0c3b2a1f... failed: essential container train exited with code 3"
check_mode:
  description: Whether it was a check-mode run (nothing started).
  returned: always
  type: bool
run_task_request:
  description: The RunTask parameters sent (or, in check mode, that would be sent).
  returned: when the options were valid
  type: dict
task_arn:
  description: The task's ARN.
  returned: when a task was started
  type: str
  sample: arn:aws:ecs:eu-west-1:123456789012:task/training/5e1d0c3b2a1f4e8d9c7b6a5f4e3d2c1b
task_id:
  description: The task's ID (the last part of its ARN).
  returned: when a task was started
  type: str
cluster_arn:
  description: The cluster's ARN.
  returned: when a task was started
  type: str
task_definition_arn:
  description: The task definition revision that ran.
  returned: when a task was started
  type: str
last_status:
  description: The task's last status (C(STOPPED) at the end; C(PROVISIONING) with O(wait=false)).
  returned: when a task was started
  type: str
desired_status:
  description: The task's desired status.
  returned: when a task was started
  type: str
stop_code:
  description:
    - Why the task stopped, as ECS says it (C(EssentialContainerExited), C(TaskFailedToStart),
      C(UserInitiated), C(SpotInterruption), ...).
  returned: when a task was started
  type: str
stopped_reason:
  description:
    - "ECS's stoppedReason, for example C(Essential container in task exited) or
      C(CannotPullContainerError: ...)."
  returned: when a task was started
  type: str
exit_code:
  description: The followed container's exit code (V(null) when it never ran or stopped without one).
  returned: when the task was followed to its end
  type: int
timed_out:
  description: Whether O(timeout) passed; the task was then stopped.
  returned: when the task was followed to its end
  type: bool
overrides:
  description: The task's overrides, as ECS returns them (C(containerOverrides) with C(environment), C(command)...).
  returned: when a task was started
  type: dict
created_at:
  description: When the task was created (ISO 8601).
  returned: when a task was started
  type: str
started_at:
  description: When its containers started (ISO 8601); V(null) when they never did.
  returned: when a task was started
  type: str
stopping_at:
  description: When it began to stop.
  returned: when a task was started
  type: str
stopped_at:
  description: When it stopped (ISO 8601).
  returned: when the task was followed to its end
  type: str
duration:
  description: Seconds from started_at to stopped_at; V(null) when it never started.
  returned: when the task was followed to its end
  type: float
launch_type:
  description: Where it ran.
  returned: when a task was started
  type: str
started_by:
  description: Its startedBy.
  returned: when a task was started
  type: str
containers:
  description: Each container of the task.
  returned: when a task was started
  type: list
  elements: dict
  contains:
    name:
      description: The container's name.
      type: str
    essential:
      description: Whether it is essential (its exit stops the task).
      type: bool
    last_status:
      description: Its last status.
      type: str
    exit_code:
      description: Its exit code (137 when it was killed after its stopTimeout); V(null) when it never ran.
      type: int
    reason:
      description: "Why it stopped, when ECS says (C(CannotPullContainerError: ...), C(OutOfMemoryError: ...))."
      type: str
    image:
      description: The image it ran.
      type: str
    image_digest:
      description: The digest of that image.
      type: str
    runtime_id:
      description: Its runtime (Docker) ID.
      type: str
    log_group:
      description: Its awslogs group, when it logs to CloudWatch.
      type: str
    log_stream:
      description: Its awslogs stream.
      type: str
followed_container:
  description: The container whose log was followed.
  returned: when the options were valid
  type: str
log_group:
  description: The followed container's log group.
  returned: when the options were valid
  type: str
log_stream:
  description: The followed container's log stream.
  returned: when a task was started
  type: str
  sample: train/train/5e1d0c3b2a1f4e8d9c7b6a5f4e3d2c1b
log_lines:
  description: The last O(tail_lines) lines of the followed container's log.
  returned: always
  type: list
  elements: str
log_lines_total:
  description: How many log lines were read.
  returned: always
  type: int
statuses:
  description: The statuses the task was seen in, each with the seconds since RunTask.
  returned: always
  type: list
  elements: dict
  sample:
    - {"status": "PROVISIONING", "after": 0.0}
    - {"status": "RUNNING", "after": 2.1}
    - {"status": "STOPPED", "after": 14.8}
api_calls:
  description: The AWS calls made, by operation.
  returned: always
  type: dict
  sample: {"DescribeClusters": 1, "DescribeTaskDefinition": 1, "RunTask": 1, "DescribeTasks": 6, "GetLogEvents": 9}
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.mlops.deploy.plugins.module_utils._ecs_task import TaskError
from ansible_collections.mlops.deploy.plugins.module_utils._ecs_task_run import (
    SPEC_RULES,
    EcsApi,
    TaskRun,
    argument_spec,
    retry_decorator,
)


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_RULES)
    retry = retry_decorator()
    api = EcsApi(
        module.client("ecs", retry_decorator=retry),
        lambda region: module.client("logs", retry_decorator=retry, **({"region": region} if region else {})),
        module.region,
    )
    run = TaskRun(api, module.params, check_mode=module.check_mode)
    try:
        result, failure = run.run()
    except TaskError as exc:
        module.fail_json(msg=str(exc), **run.partial())
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="ECS call failed", **run.partial())
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ssm_run_playbook
short_description: Run a playbook (or any SSM document) on EC2 instances through SSM Run Command, in rolling batches
version_added: 0.1.0
description:
  - Sends C(AWS-ApplyAnsiblePlaybooks) (or any other Command document) with SSM Run Command
    to instances given by ID, by tag or as inventory hosts, and follows every invocation to its
    end. No SSH; the instances need only the SSM agent and an instance profile.
  - "Before anything is sent: the targets are resolved (tags through C(ec2:DescribeInstances),
    running instances only) and each one is checked to be managed by SSM and C(Online)
    (C(ssm:DescribeInstanceInformation) by ID up to 50 instances; more, the region's managed
    nodes from C(ssm:DescribeInstanceProperties), 1,000 a call, read until every target is
    found, or C(ssm:DescribeInstanceInformation) 50 a call when the role may not call it). An
    empty resolution, an offline instance or bad input fails with a message that says what to fix, and nothing is sent."
  - "Rolling batches: O(batches) splits the fleet the way the play keyword C(serial) does, for
    example V([1, \"25%\", \"100%\"]): a canary, then a quarter of the fleet, then the rest. Each
    batch is a command of its own and must end with B(every) invocation C(Success) before the
    next batch is sent. When a batch fails, the rollout stops: later batches never receive the
    command and are reported as V(not_started)."
  - "Every status and status detail of SSM is handled (C(Pending), C(InProgress), C(Delayed),
    C(Success), C(Cancelled), C(Cancelling), C(TimedOut), C(Failed); C(Delivery Timed Out),
    C(Execution Timed Out), C(Undeliverable), C(Terminated), C(Access Denied), C(Invalid Platform)).
    A command-level C(Success) never hides an instance that did not run: an instance that was
    targeted but has no invocation, or whose invocation is C(Undeliverable), C(Delivery Timed Out),
    C(Cancelled) or C(Terminated), is a failure."
  - "Few API calls: a batch of at most 50 instances is followed with one
    C(ListCommandInvocations) call per poll; a bigger one with one C(ListCommands) call per poll
    (its counters say how many invocations completed), and its invocations are listed (50 a
    page) once, at the end. Polls come sub-second at first, back off while nothing changes (up to
    O(poll_max_interval)) and close in as the last invocations near their end. Throttled calls
    are retried with jittered backoff."
  - "While it waits, one line per state change is printed on the controller, for example
    'batch 2/3 (25 instances): 18 Success, 6 InProgress, 1 Pending — 41s'. A batch of more than
    50 instances shows ListCommands' counters instead: '412 completed (3 Failed or Timed Out),
    588 Pending or InProgress'."
  - On failure, RV(msg) names the failed instances and shows their last lines; each failed
    instance's RV(instances[].stdout_tail) and RV(instances[].stderr_tail) come from CloudWatch
    Logs when O(cloudwatch_log_group) is set (the whole output), else from the invocation output
    (its first 2,500 characters, as SSM keeps them).
  - "Behind an ALB: with O(target_groups), each batch leaves its target groups before it is sent
    and rejoins them after it succeeded. Per batch and target group: the batch's instances that
    are registered (on the target group's port, or O(target_groups[].port)) are deregistered,
    and the rollout waits until C(DescribeTargetHealth) no longer shows them (draining done,
    at most O(target_groups[].drain_timeout)); then the batch is sent and followed as usual;
    then every instance of the batch is registered and the rollout waits until each one is
    C(healthy) (at most O(target_groups[].healthy_timeout)). Progress lines say
    'batch 2/3: i-0abc out of tg/model-api (draining)' and 'batch 2/3: i-0abc back in
    tg/model-api (healthy in 12.5s)'."
  - "A batch that fails (its deploy failed or timed out, or an instance did not become healthy)
    stops the rollout and its instances stay B(out) of the target groups: the version they run
    is not known to be good. An instance that did not become healthy is deregistered again. The
    rollback that puts them back on the previous release (the C(mlops.deploy.release) role
    passes the same O(target_groups)) registers them again once they are healthy on it. A batch
    whose instances do not drain in time is not sent at all; its instances, untouched, are
    registered again."
  - O(timeout) bounds the whole wait; when it expires the command is cancelled, and the
    result says so, with the status each instance had reached (RV(instances[].status_at_timeout)).
  - "A host that dies mid-run does not hold the rollout until O(timeout): while invocations are
    in progress, once every O(host_check_interval) seconds (a minute by default), the module reads
    those instances' C(PingStatus) (C(DescribeInstanceInformation), 50 a call) and EC2 state
    (C(DescribeInstances)). An instance whose agent SSM no longer hears from (C(ConnectionLost),
    some minutes after its last word), or that is not running any more, has its invocation
    cancelled and fails its batch as C(lost), with why (RV(instances[].lost_reason)); the others
    run to their end."
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  instance_ids:
    description:
      - Instance IDs to run on (C(i-...) or C(mi-...)), any number. SSM takes at most 50 instance
        IDs a command, so a batch of more than 50 is sent as several commands of at most 50.
      - Exactly one of O(instance_ids), O(targets) and O(inventory_hosts) is required.
    type: list
    elements: str
  targets:
    description:
      - Tag targets, C(tag:<key>=<value>[,<value>...]). Several targets must all match; several
        values of one tag any of them. Resolved to the B(running) instances that match
        (C(ec2:DescribeInstances)); none fails with "no running instance has tag ...".
      - When the whole fleet goes in one batch and no instance was skipped, the command is sent
        to SSM with these tags as its C(Targets), so O(max_concurrency) and O(max_errors) hold
        across the fleet; the instances SSM picks are checked against the resolved ones.
    type: list
    elements: str
  inventory_hosts:
    description:
      - Inventory hosts as their variables, each holding C(instance_id), as the
        C(amazon.aws.aws_ec2) inventory sets it. For example
        V({{ groups['model_servers'] | map('extract', hostvars\) | list }}).
    type: list
    elements: raw
  document_name:
    description:
      - The SSM document to run. V(AWS-ApplyAnsiblePlaybooks) takes the first-class options
        O(playbook_url), O(playbook_file), O(extra_vars), O(install_dependencies), O(verbose) and
        O(execution_timeout); any other Command document takes its parameters in O(parameters).
    type: str
    default: AWS-ApplyAnsiblePlaybooks
  document_version:
    description:
      - Version of the document (V($DEFAULT), V($LATEST) or a number). SSM's default when omitted.
    type: str
  playbook_url:
    description:
      - With V(AWS-ApplyAnsiblePlaybooks), where the playbook is, required. V(s3://bucket/key) (turned
        into the C(https://<bucket>.s3.<region>.amazonaws.com/<key>) path SSM expects) or an
        C(https://) URL of an S3 object. A C(.yml) playbook, or a C(.zip) bundle that holds the
        playbook, its C(ansible.cfg), roles and collections.
      - The instance profile of every instance must be allowed to read it (C(s3:GetObject)).
    type: str
  playbook_file:
    description:
      - The playbook to run, as a path inside the bundle (V(deploy.yml)). Defaults to the file
        name of O(playbook_url) when that is a C(.yml)/C(.yaml); required for a C(.zip) bundle.
    type: str
  extra_vars:
    description:
      - Variables passed to the playbook (C(ansible-playbook -e key=value ...)); they reach the play
        as strings (booleans as V(true)/V(false)).
      - "AWS-ApplyAnsiblePlaybooks refuses white space and any of C(: | ; & \\( \\)) in these values,
        and pastes them into a shell line, so quotes, C($), backquotes and backslashes are
        refused too: such values fail B(before) anything is sent. Image URIs, URLs, lists and
        JSON belong in the release bundle (a vars file inside the C(.zip)), not here."
      - Names are letters, digits and C(_).
    type: dict
    default: {}
  install_dependencies:
    description:
      - With V(AWS-ApplyAnsiblePlaybooks), let the document install Ansible (and unzip) on the
        instances first. Off by default; instances are expected to have them already.
    type: bool
    default: false
  verbose:
    description:
      - Verbosity of the playbook run on the instances, 1 (C(-v)) to 4 (C(-vvvv)).
    type: int
    choices: [1, 2, 3, 4]
    default: 1
  execution_timeout:
    description:
      - With V(AWS-ApplyAnsiblePlaybooks), seconds the playbook may run on an instance before SSM
        stops it (status C(Execution Timed Out), a failure). The document's default (3600) when
        omitted.
    type: int
  parameters:
    description:
      - "The parameters of a document other than V(AWS-ApplyAnsiblePlaybooks), for example
        C({commands: [\"systemctl restart model-api\"]}) for C(AWS-RunShellScript). Values may be
        strings or lists of strings."
    type: dict
  comment:
    description:
      - The command's comment (at most 100 characters), shown in the SSM console.
      - Defaults to C(mlops.deploy.ssm_run_playbook).
    type: str
  max_concurrency:
    description:
      - How many instances of one command run at the same time, a count (V(10)) or a percentage
        (V(20%)), passed to SSM.
      - A command holds at most 50 instance IDs; when a batch is sent as several commands, SSM
        applies this to each command. Use O(batches) for a fleet-wide limit, or O(targets) alone.
    type: str
    default: "50"
  max_errors:
    description:
      - After how many failed invocations SSM stops sending the command to more instances of
        that command, a count or a percentage. V(0) stops at the first failure (the remaining
        invocations end as C(Terminated)). Like O(max_concurrency), per command.
      - Whatever this says, the batch succeeds only if every invocation succeeded.
    type: str
    default: "0"
  batches:
    description:
      - Rolling batches, as the play keyword C(serial) reads them. Each entry is the size of one
        batch, a count or a percentage of the B(whole) fleet (rounded down, at least 1); the last
        entry repeats until every instance has a batch. On 100 instances, V([1, "25%", "100%"])
        gives batches of 1, 25 and 74; V([1, "10%"]) gives 1, then 10 at a time.
      - Empty (the default) sends the whole fleet at once.
    type: list
    elements: raw
    default: []
  delivery_timeout:
    description:
      - Seconds SSM keeps trying to deliver the command to an instance (SendCommand's
        C(TimeoutSeconds), 30 to 2592000); then the invocation ends as C(Delivery Timed Out),
        a failure. SSM's default (3600) when omitted.
    type: int
  cloudwatch_log_group:
    description:
      - Send the output of the command to this CloudWatch Logs group (streams
        C(<command-id>/<instance-id>/runShellScript/stdout) and C(.../stderr)). Then failed
        instances' tails and the play recaps come from there, whole.
      - Read them later with M(mlops.deploy.cloudwatch_tail).
    type: str
  output_filter:
    description:
      - A CloudWatch Logs filter pattern (for example V('"DEPLOY_SUMMARY"')). The stdout lines
        of each instance that match it are returned in RV(instances[].output_lines), read
        from CloudWatch with one C(FilterLogEvents) per command, so they are found wherever
        they are in the output (SSM keeps only its first 2,500 characters in the invocation).
      - Lets the playbook report something per instance, e.g. one line of JSON.
      - Needs O(cloudwatch_log_group).
    type: str
  timeout:
    description:
      - Seconds to wait for the whole rollout (every batch). When they pass, the running commands
        are cancelled and the task fails, saying where each instance had got to.
    type: int
    default: 3600
  poll_max_interval:
    description:
      - The longest pause between two polls, in seconds. Polls start every 0.25 s and back off
        to this while nothing changes.
    type: float
    default: 5.0
  host_check_interval:
    description:
      - While invocations run, seconds between two looks at those instances' SSM agents
        (C(DescribeInstanceInformation), 50 a call) and EC2 states (C(DescribeInstances)); the first
        look comes this long into a batch. An instance whose agent is no longer C(Online), or that
        stopped running, ends as a failure naming it and its invocation is cancelled, instead of
        the rollout waiting for its O(timeout).
      - At least 5. A dead host is named within about this plus the time SSM takes to mark its
        agent C(ConnectionLost).
    type: float
    default: 60.0
  skip_offline:
    description:
      - When some targets are not managed by SSM or not C(Online), run on the others and report
        these in RV(skipped_instances), instead of failing before anything is sent.
    type: bool
    default: false
  tail_lines:
    description:
      - How many of the last lines of stdout and stderr to return per instance.
    type: int
    default: 20
  target_groups:
    description:
      - ALB (elbv2) target groups the instances serve behind. Each batch leaves them before it
        is sent and rejoins them after it succeeded (see the description). Only target groups of
        target type V(instance).
      - Empty (the default) makes no load balancer call at all.
      - In check mode no elbv2 call is made, not even a read; RV(batches[].target_groups) says
        what would happen.
    type: list
    elements: dict
    default: []
    suboptions:
      target_group:
        description:
          - The target group's ARN or name.
        type: str
        required: true
      port:
        description:
          - The port the instances are registered with (the endpoint's port on the instance).
            The target group's own port when omitted.
        type: int
      drain_timeout:
        description:
          - Seconds to wait, per batch, until the deregistered instances have left the target
            group (draining over). When they pass, the batch is not sent, its instances are
            registered again and the task fails.
          - Defaults to the target group's C(deregistration_delay.timeout_seconds) plus 30 s.
          - V(0) does not wait (the instances may still finish requests while they are deployed).
        type: int
      healthy_timeout:
        description:
          - Seconds to wait, per batch, until every instance is C(healthy) in the target group
            after its registration. When they pass, or when waiting cannot help (the target group
            is not used by a load balancer, C(Target.NotInUse)), the instances not healthy are
            deregistered again and the task fails, naming each with its state and reason.
        type: int
        default: 300
notes:
  - "This module runs on the controller, through an action plugin of the same name: use it in a
    play on V(localhost) (or with C(run_once: true)), not once per remote host. The action plugin
    validates the options, makes the boto3 clients with amazon.aws's own functions (so
    O(region), O(profile), O(endpoint_url), credentials, their environment variables, the task's
    C(environment) and C(module_defaults) of the C(group/mlops.deploy.aws) action group work as
    for every amazon.aws module), runs the rollout in-process and prints its progress while it
    waits. Run without the action plugin, the module does the same work and prints nothing."
  - "In check mode, V(AWS-ApplyAnsiblePlaybooks) is B(sent) with C(Check=True): the playbook runs
    with C(--check) on every instance, which changes nothing there, and RV(changed) says whether
    it would change something. Other documents have no dry run: in check mode they are not sent,
    and the result shows the plan."
  - "RV(changed) is true when any instance's play reported changes (the C(changed=) counts of the
    PLAY RECAP, read from the invocation output, or from CloudWatch Logs when the output is
    longer than SSM keeps). When a recap cannot be read, an instance that ran counts as changed.
    With other documents, RV(changed) is true when the command ran anywhere."
  - "IAM: C(ssm:SendCommand), C(ssm:ListCommands), C(ssm:ListCommandInvocations),
    C(ssm:CancelCommand), C(ssm:DescribeInstanceInformation), optionally
    C(ssm:DescribeInstanceProperties) (fleets of more than 50), C(ec2:DescribeInstances) (with
    O(targets), and to see a host stop mid-run: without it, C(PingStatus) alone says) and, with
    O(cloudwatch_log_group), C(logs:DescribeLogGroups),
    C(logs:DescribeLogStreams), C(logs:GetLogEvents) and C(logs:FilterLogEvents); with
    O(target_groups), C(elasticloadbalancing:DescribeTargetGroups),
    C(elasticloadbalancing:DescribeTargetGroupAttributes), C(elasticloadbalancing:DescribeTargetHealth),
    C(elasticloadbalancing:DeregisterTargets) and C(elasticloadbalancing:RegisterTargets)."
  - The C(async) keyword is not supported (the work happens on the controller); use O(timeout).
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return a prediction of changed without changing the instances.
    details:
      - With V(AWS-ApplyAnsiblePlaybooks) the playbook runs in C(--check) mode on the instances.
      - Other documents are not sent in check mode; RV(changed) is then V(true).
  diff_mode:
    support: none
    description: Returns details on what changed.
  idempotent:
    support: partial
    description: Running it twice changes nothing more the second time and reports so.
    details:
      - Each run sends a new command. RV(changed) follows the plays' recap, so an idempotent
        playbook reports V(changed=false) on its second run. Other documents always report V(changed=true).
  action:
    support: full
    description: Runs on the controller through an action plugin of the same name, which prints progress.
  async:
    support: none
    description: Not usable with the C(async) keyword.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: mlops.deploy.cloudwatch_tail
  - name: AWS-ApplyAnsiblePlaybooks
    description: The SSM document this module sends by default.
    link: https://docs.aws.amazon.com/systems-manager/latest/userguide/systems-manager-state-manager-ansible.html
  - name: Understanding command statuses
    description: What each SSM Run Command status and status detail means.
    link: https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
"""

EXAMPLES = r"""
# In a play on localhost; module_defaults can set region and profile for every AWS module:
#   module_defaults:
#     group/mlops.deploy.aws: {region: eu-west-1, profile: prod}

- name: Run deploy.yml from the release bundle on every instance tagged Name=model-server, canary first
  mlops.deploy.ssm_run_playbook:
    targets:
      - tag:Name=model-server
      - tag:env=prod
    playbook_url: s3://acme-releases/releases/prod/r42.zip
    playbook_file: deploy.yml
    extra_vars:
      env: prod
      release_id: r42
    batches: [1, "25%", "100%"]
    cloudwatch_log_group: /mlops/deploy/prod
    execution_timeout: 900
    timeout: 1800
  register: deploy

- name: Show what ran where
  ansible.builtin.debug:
    msg: "{{ deploy.summary }} in commands {{ deploy.command_ids }}"

- name: The hosts of an amazon.aws.aws_ec2 inventory group, in check mode (--check on the instances)
  mlops.deploy.ssm_run_playbook:
    inventory_hosts: "{{ groups['model_servers'] | map('extract', hostvars) | list }}"
    playbook_url: s3://acme-releases/releases/staging/r42.zip
    playbook_file: deploy.yml
  check_mode: true
  register: dry_run

- name: One playbook file on three instances by ID, go on when one is offline
  mlops.deploy.ssm_run_playbook:
    instance_ids:
      - i-0123456789abcdef0
      - i-0123456789abcdef1
      - i-0123456789abcdef2
    playbook_url: https://acme-ops.s3.eu-west-1.amazonaws.com/playbooks/rotate-logs.yml
    skip_offline: true

- name: Any other document, here a shell command on the whole tagged fleet, 10% at a time
  mlops.deploy.ssm_run_playbook:
    targets: ["tag:Name=model-server"]
    document_name: AWS-RunShellScript
    parameters:
      commands: ["systemctl restart model-api"]
      executionTimeout: "120"
    max_concurrency: 10%
    max_errors: "1"

- name: Behind an ALB, each batch leaves the target group while it is deployed
  mlops.deploy.ssm_run_playbook:
    targets: ["tag:Name=model-server"]
    playbook_url: s3://acme-releases/releases/prod/r43.zip
    playbook_file: deploy.yml
    batches: [1, "25%"]
    target_groups:
      - target_group: model-api           # or its ARN
        port: 8080                        # the endpoint's port on the instances
        drain_timeout: 120                # default: the target group's deregistration delay + 30 s
        healthy_timeout: 300
  register: deploy

- name: A failed rollout shows the logs; roll the instances that ran it back
  block:
    - name: Deploy r43
      mlops.deploy.ssm_run_playbook:
        targets: ["tag:Name=model-server"]
        playbook_url: s3://acme-releases/releases/prod/r43.zip
        playbook_file: deploy.yml
        batches: [1, "50%"]
  rescue:
    - name: Roll the instances that ran r43 (the failed ones too) back to r42
      vars:
        ran_r43: "{{ ansible_failed_result.instances | rejectattr('response_code', 'in', [none, -1]) }}"
      mlops.deploy.ssm_run_playbook:
        instance_ids: "{{ ran_r43 | map(attribute='instance_id') | list }}"
        playbook_url: s3://acme-releases/releases/prod/r42.zip
        playbook_file: deploy.yml
"""

RETURN = r"""
changed:
  description: Whether any instance's play reported changes (see the notes); in check mode, whether it would.
  returned: always
  type: bool
msg:
  description: What happened, in one sentence; on failure, the failed instances with their last lines.
  returned: always
  type: str
document_name:
  description: The document that was sent.
  returned: always
  type: str
  sample: AWS-ApplyAnsiblePlaybooks
check_mode:
  description: Whether the run was a check-mode run.
  returned: always
  type: bool
command_ids:
  description: The IDs of the commands sent, in order (one per batch, or more when a batch has more than 50 instances).
  returned: always
  type: list
  elements: str
  sample: ["0f5b7d3e-4a1c-4a55-9a3e-1d2f3c4b5a69"]
timed_out:
  description: Whether O(timeout) expired; the running commands were then cancelled.
  returned: always
  type: bool
summary:
  description:
    - Counts of instances per outcome, and C(total). Outcomes are C(success), C(failed),
      C(execution_timed_out), C(delivery_timed_out), C(timed_out), C(cancelled), C(undeliverable),
      C(terminated), C(access_denied), C(invalid_platform), C(no_invocation) (targeted, never ran),
      C(unfinished) (still running when the wait ended and the cancellation did not land),
      C(lost) (its agent went silent or it stopped running mid-run; its invocation was cancelled),
      C(not_started) (a later batch that was never sent) and C(skipped) (offline, with O(skip_offline)).
    - With O(target_groups) also C(drain_timed_out) (its batch was not sent, as it did not leave a
      target group in time) and C(unhealthy_in_target_group) (deployed, but not C(healthy) in a
      target group in time, and deregistered again).
  returned: always
  type: dict
  sample: {"total": 4, "success": 1, "failed": 1, "not_started": 2}
batches:
  description: The batches, in order.
  returned: always
  type: list
  elements: dict
  contains:
    batch:
      description: Batch number, from 1.
      type: int
    instance_ids:
      description: The instances of the batch.
      type: list
      elements: str
    command_ids:
      description: The commands sent for the batch (none if it was not started).
      type: list
      elements: str
    status:
      description: V(success), V(failed), V(timed_out), V(not_started), or V(not_sent_check_mode).
      type: str
    target_groups:
      description:
        - With O(target_groups), what happened to the batch in each target group.
        - In check mode, what would happen (C(target_group), C(port), C(would_take_out), C(would_put_back)).
      type: list
      elements: dict
      returned: when O(target_groups) is set and the batch was started
      contains:
        target_group:
          description: C(tg/<name>) (the option as given, in check mode).
          type: str
        target_group_arn:
          description: Its ARN.
          type: str
        port:
          description: The port the instances are registered with.
          type: int
        taken_out:
          description: The instances of the batch that were registered and were deregistered before the deploy.
          type: list
          elements: str
        drain_waited:
          description: Seconds waited until they had left (V(null) when none was registered).
          type: float
        put_back:
          description: The instances registered after the deploy (every instance of the batch).
          type: list
          elements: str
        healthy_waited:
          description: Seconds waited until they were C(healthy).
          type: float
        left_out:
          description: The instances left out of the target group (failed batch, or not healthy in time).
          type: list
          elements: str
        states:
          description: When a wait failed, each instance still waited for, with its state and reason.
          type: dict
          sample:
            i-0123456789abcdef0: "unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [503])"
instances:
  description: One entry per targeted instance (skipped ones are in RV(skipped_instances)), in batch order.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance.
      type: str
      sample: i-0123456789abcdef0
    instance_name:
      description: Its C(Name) tag, when the targets were tags.
      type: str
    batch:
      description: The batch it belonged to.
      type: int
    command_id:
      description: The command it received; V(null) when it received none.
      type: str
    status:
      description:
        - SSM's Status of its invocation (C(Success), C(Failed), C(TimedOut), C(Cancelled)...).
        - V(null) when it has no invocation.
      type: str
    status_details:
      description:
        - SSM's StatusDetails (C(Success), C(Failed), C(DeliveryTimedOut), C(ExecutionTimedOut),
          C(Undeliverable), C(Terminated)...).
      type: str
    outcome:
      description: What it means, one of the outcomes listed under RV(summary).
      type: str
      sample: success
    reason:
      description:
        - With O(target_groups), why the instance failed in its target group (outcomes C(drain_timed_out),
          C(unhealthy_in_target_group)).
      type: str
      returned: when the target group did not follow
    lost_reason:
      description:
        - Why the instance was given up on (outcome C(lost)), for example
          C(lost its SSM agent (ConnectionLost since 2026-12-03T12:01:02Z)) or
          C(stopped running (EC2 state stopped)).
      type: str
      returned: when the outcome is C(lost)
    response_code:
      description: The exit code of the playbook run (C(-1) when it never started).
      type: int
    duration:
      description: Seconds the document's steps ran on the instance.
      type: float
    changed:
      description: Whether its play reported changes (PLAY RECAP); V(null) when unknown.
      type: bool
    stdout_tail:
      description: The last O(tail_lines) lines of its stdout.
      type: list
      elements: str
    stderr_tail:
      description: The last O(tail_lines) lines of its stderr.
      type: list
      elements: str
    output_lines:
      description: With O(output_filter), the lines of its stdout that match it.
      returned: when O(output_filter) is set
      type: list
      elements: str
    log_stream:
      description: With O(cloudwatch_log_group), its stdout stream (stderr is the same name ending in C(/stderr)).
      type: str
      sample: 0f5b7d3e-4a1c-4a55-9a3e-1d2f3c4b5a69/i-0123456789abcdef0/runShellScript/stdout
    status_at_timeout:
      description: When O(timeout) expired, the Status it had reached before the command was cancelled.
      type: str
      returned: when RV(timed_out) is true
    unexpected:
      description: True for an instance SSM targeted (by tag) that the resolution before sending did not find.
      type: bool
      returned: when true
skipped_instances:
  description:
    - Targets left out by O(skip_offline), with why.
    - Not named C(skipped), which Ansible reads as the task having been skipped (and then ignores C(failed_when)).
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance.
      type: str
    ping_status:
      description: Its PingStatus in SSM (C(ConnectionLost), C(Inactive)), V(null) when SSM does not manage it.
      type: str
    reason:
      description: Why it cannot receive commands.
      type: str
    outcome:
      description: V(skipped).
      type: str
offline:
  description:
    - When the pre-flight stopped the run (an instance offline without O(skip_offline), or every one
      offline), the instances that cannot receive commands, with why (C(instance_id), C(ping_status),
      C(reason), as in RV(skipped_instances)); nothing was sent.
  returned: when the pre-flight failed
  type: list
  elements: dict
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import connect
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_options import SPEC_RULES, RolloutOptions, argument_spec
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_rollout import Rollout
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_run import SsmRunError


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_RULES)
    api = connect(module.client, module.region)
    rollout = Rollout(api, RolloutOptions.from_params(module.params), check_mode=module.check_mode)
    try:
        result, failure = rollout.run()
    except SsmRunError as exc:
        module.fail_json(msg=str(exc), **rollout.partial(), **exc.result)
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg=rollout.aws_error_message(), **rollout.partial())
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudwatch_tail
short_description: Read or follow CloudWatch Logs streams, including the output of SSM commands
version_added: 0.1.0
description:
  - Reads the events of one log stream, of every stream with a prefix, or of the
    streams an SSM Run Command writes (C(<command-id>/<instance-id>/<step>/stdout|stderr)),
    fully paginated, in a time window, optionally filtered by a CloudWatch Logs filter pattern.
  - With O(follow=true), keeps reading until a line matches O(until_pattern), O(max_events)
    events were read, or O(timeout) seconds passed. Streams that do not exist yet are
    waited for, since an SSM command creates its streams only when it starts writing.
  - Never returns part of the logs as if it were all of them; RV(truncated) says when a
    limit (O(max_events), O(tail_lines)) cut something off.
  - Read-only; RV(ignore:changed) is always V(false).
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  log_group:
    description:
      - Name of the log group.
    type: str
    required: true
    aliases: [log_group_name]
  log_stream:
    description:
      - Name of one log stream.
      - Exactly one of O(log_stream), O(log_stream_prefix) and O(ssm_command_id) is required.
    type: str
  log_stream_prefix:
    description:
      - Read every stream whose name starts with this prefix, merged in time order.
    type: str
  ssm_command_id:
    description:
      - Read the CloudWatch output of this SSM Run Command command, from the streams
        AWS names C(<command-id>/<instance-id>/<step>/stdout) and C(.../stderr).
    type: str
  instance_id:
    description:
      - With O(ssm_command_id), only this instance's output. Without it, the output of
        every instance the command ran on.
    type: str
  step:
    description:
      - With O(ssm_command_id), the document step whose output to read.
      - V(runShellScript) is the step of C(AWS-ApplyAnsiblePlaybooks). For
        C(AWS-RunShellScript) use V(aws:runShellScript) (written C(aws-runShellScript)
        in stream names; either spelling is accepted).
    type: str
    default: runShellScript
  output:
    description:
      - With O(ssm_command_id), which output streams to read.
    type: str
    choices: [stdout, stderr, both]
    default: both
  since:
    description:
      - Only events at or after this time. An ISO 8601 time (V(2026-11-21T10:00:00Z);
        without a zone it is UTC), a relative age (V(30s), V(15m), V(2h), V(3d), V(1w)),
        V(now), or an epoch in seconds or milliseconds.
    type: str
    aliases: [start_time]
  until:
    description:
      - Only events before this time; same forms as O(since).
      - The alias O(end_time) reads the same and keeps ansible-lint from taking a
        templated value for the task keyword C(until).
    type: str
    aliases: [end_time]
  filter_pattern:
    description:
      - A CloudWatch Logs filter pattern (for example V(ERROR) or V("?ERROR ?Traceback")).
        Switches reading to C(FilterLogEvents) across the selected streams.
    type: str
  max_events:
    description:
      - Read at most this many events (from the start of the window). When more
        exist, RV(truncated) is V(true). With O(follow=true), also a stop condition.
    type: int
  tail_lines:
    description:
      - Return only the last N events of what was read. Without O(max_events), one
        stream is read backwards from its end, so a long stream is not read whole.
    type: int
  follow:
    description:
      - Keep reading new events until O(until_pattern) matches, O(max_events) is
        reached or O(timeout) passes.
    type: bool
    default: false
  until_pattern:
    description:
      - With O(follow=true), a Python regular expression; following stops at the first
        event whose message matches it. RV(matched) and RV(matched_line) tell.
    type: str
  timeout:
    description:
      - With O(follow=true), seconds to follow before giving up.
    type: int
    default: 300
  fail_on_timeout:
    description:
      - With O(follow=true) and O(until_pattern), fail when O(timeout) passes before the
        pattern matched. V(false) returns what was read with RV(matched=false) instead.
    type: bool
    default: true
  poll_interval:
    description:
      - With O(follow=true), the longest pause between two reads in seconds. Reads come
        faster (every 0.25 s) while new events arrive and back off to this while quiet.
    type: float
    default: 2.0
notes:
  - Needs C(logs:DescribeLogGroups), C(logs:DescribeLogStreams), C(logs:GetLogEvents)
    and, with O(filter_pattern), several streams or O(log_stream_prefix), C(logs:FilterLogEvents).
  - Throttled calls are retried with jittered backoff.
  - Supports C(check_mode); it changes nothing either way.
extends_documentation_fragment:
  - mlops.deploy.attributes.read_only
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Last 50 lines a deploy wrote on one instance (SSM Run Command output)
  mlops.deploy.cloudwatch_tail:
    log_group: /mlops/deploy/prod
    ssm_command_id: "{{ deploy.command_ids[0] }}"
    instance_id: i-0123456789abcdef0
    output: both
    tail_lines: 50
  register: deploy_logs

- name: Errors of the last two hours across every stream of a service
  mlops.deploy.cloudwatch_tail:
    log_group: /ecs/model-api
    log_stream_prefix: model-api/
    since: 2h
    filter_pattern: "?ERROR ?Traceback"
    max_events: 500

- name: Wait until the model server says it is ready (at most 10 minutes)
  mlops.deploy.cloudwatch_tail:
    log_group: /ecs/model-api
    log_stream: model-api/web/4f1c2d
    follow: true
    until_pattern: "Application startup complete"
    timeout: 600

- name: Every line of one stream, since a given time, in another account's profile
  mlops.deploy.cloudwatch_tail:
    profile: staging
    region: eu-west-1
    log_group: /mlops/deploy/staging
    log_stream: build-42
    since: "2026-11-21T09:00:00Z"
"""

RETURN = r"""
events:
  description: The events read, in time order.
  returned: always
  type: list
  elements: dict
  contains:
    timestamp:
      description: Event time, epoch milliseconds.
      type: int
      sample: 1763719200123
    time:
      description: Event time, ISO 8601 UTC.
      type: str
      sample: "2026-11-21T10:00:00.123Z"
    stream:
      description: The log stream the event came from.
      type: str
      sample: 2f6a.../i-0123456789abcdef0/runShellScript/stdout
    message:
      description: The event's message.
      type: str
      sample: "TASK [mlops.deploy.compose_deploy] ****"
    event_id:
      description: CloudWatch's event id, when the API gave one.
      type: str
lines:
  description: The messages alone, in the same order as RV(events).
  returned: always
  type: list
  elements: str
streams:
  description: The log streams that were read.
  returned: always
  type: list
  elements: str
truncated:
  description: Whether a limit (O(max_events), O(tail_lines)) left events out.
  returned: always
  type: bool
matched:
  description: With O(follow=true) and O(until_pattern), whether the pattern matched.
  returned: when O(follow=true)
  type: bool
matched_line:
  description: The message that matched O(until_pattern).
  returned: when O(follow=true)
  type: str
stopped_by:
  description: Why following stopped, V(pattern), V(max_events) or V(timeout).
  returned: when O(follow=true)
  type: str
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.mlops.deploy.plugins.module_utils._cloudwatch_logs import (
    LogReader,
    LogsError,
    parse_time,
    take_tail,
)


def main():
    argument_spec = {
        "log_group": {"type": "str", "required": True, "aliases": ["log_group_name"]},
        "log_stream": {"type": "str"},
        "log_stream_prefix": {"type": "str"},
        "ssm_command_id": {"type": "str"},
        "instance_id": {"type": "str"},
        "step": {"type": "str", "default": "runShellScript"},
        "output": {"type": "str", "choices": ["stdout", "stderr", "both"], "default": "both"},
        "since": {"type": "str", "aliases": ["start_time"]},
        "until": {"type": "str", "aliases": ["end_time"]},
        "filter_pattern": {"type": "str"},
        "max_events": {"type": "int"},
        "tail_lines": {"type": "int"},
        "follow": {"type": "bool", "default": False},
        "until_pattern": {"type": "str"},
        "timeout": {"type": "int", "default": 300},
        "fail_on_timeout": {"type": "bool", "default": True},
        "poll_interval": {"type": "float", "default": 2.0},
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[["log_stream", "log_stream_prefix", "ssm_command_id"]],
        required_one_of=[["log_stream", "log_stream_prefix", "ssm_command_id"]],
        required_by={"instance_id": "ssm_command_id"},
    )
    params = module.params
    for name in ("max_events", "tail_lines", "timeout"):
        if params[name] is not None and params[name] < (1 if name != "tail_lines" else 0):
            module.fail_json(msg="%s must be a positive number, not %s" % (name, params[name]))
    if params["until_pattern"] and not params["follow"]:
        module.fail_json(msg="until_pattern only applies with follow=true")

    client = module.client("logs", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    reader = LogReader(client, module.region)
    selection = {
        k: params[k] for k in ("log_stream", "log_stream_prefix", "ssm_command_id", "instance_id", "step", "output")
    }
    try:
        start, end = parse_time(params["since"]), parse_time(params["until"])
        if params["follow"]:
            result = reader.follow(
                params["log_group"],
                selection,
                start,
                end,
                params["filter_pattern"],
                params["until_pattern"],
                params["max_events"],
                params["timeout"],
                params["poll_interval"],
            )
        else:
            result = reader.read(
                params["log_group"],
                selection,
                start,
                end,
                params["filter_pattern"],
                params["max_events"],
                params["tail_lines"],
            )
    except LogsError as exc:
        module.fail_json(msg=str(exc))
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="could not read log group %s in %s" % (params["log_group"], module.region))

    if params["follow"] and params["tail_lines"] is not None:
        result["events"], cut_off = take_tail(result["events"], params["tail_lines"])
        result["truncated"] = result["truncated"] or cut_off
    result["lines"] = [event["message"] for event in result["events"]]
    if params["follow"] and params["until_pattern"] and result["stopped_by"] == "timeout" and params["fail_on_timeout"]:
        module.fail_json(
            msg="no line matching %r in %s of log group %s within %ss (%d events read); raise timeout, "
            "check the pattern, or set fail_on_timeout=false"
            % (
                params["until_pattern"],
                reader.describe_selection(selection),
                params["log_group"],
                params["timeout"],
                len(result["events"]),
            ),
            changed=False,
            **result,
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()

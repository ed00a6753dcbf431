# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An EventBridge rule that runs an ECS task: the rule, its ECS target, what changed.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``eventbridge_ecs_target``.

``amazon.aws.cloudwatchevent_rule`` takes an ECS target's task definition and count only
(no launch type, no network configuration, so no Fargate task), and replaces every target
of the rule with its own list. Here one ECS target (by its ID) is put on a rule with the
whole of EventBridge's ``EcsParameters``, leaving the rule's other targets alone; its input
can be given as EventBridge takes it, or as environment variables of one container taken
from the event (the input transformer is built from them).

Plain values in, plain values out, but for ``EventsApi`` (the AWS calls).
"""

from __future__ import annotations

import json
import re

from ansible_collections.mlops.deploy.plugins.module_utils import _ecs_task as ecs_rules

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TARGET_ID = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
_RULE_NAME = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
INPUT_PATHS_MAX = 100


class EventBridgeError(Exception):
    """Bad input; the message says what to fix."""


def check_names(params):
    if not _RULE_NAME.match(params.get("rule") or ""):
        raise EventBridgeError("rule %r must be 1 to 64 letters, digits, '.', '-' or '_'" % (params.get("rule"),))
    if not _TARGET_ID.match(params.get("target_id") or ""):
        raise EventBridgeError(
            "target_id %r must be 1 to 64 letters, digits, '.', '-' or '_'" % (params.get("target_id"),)
        )


def event_pattern(value):
    """The rule's event pattern as the JSON text PutRule takes (a mapping or JSON text in)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise EventBridgeError("event_pattern is not valid JSON: %s" % exc) from None
    if not isinstance(value, dict) or not value:
        raise EventBridgeError("event_pattern must be a non-empty mapping (e.g. {source: [aws.ecr]})")
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def same_pattern(a, b):
    try:
        return json.loads(a or "null") == json.loads(b or "null")
    except ValueError:
        return a == b


def environment_transformer(container, variables):
    """An input transformer setting environment variables of ``container`` from the event:
    ``{"IMAGE_DIGEST": "$.detail.image-digest"}`` -> InputPathsMap + InputTemplate of the
    task's overrides."""
    if not variables:
        raise EventBridgeError("environment_from_event needs at least one VARIABLE: $.json.path")
    if len(variables) > INPUT_PATHS_MAX:
        raise EventBridgeError("EventBridge takes at most %d input paths" % INPUT_PATHS_MAX)
    paths, environment = {}, []
    for name, path in sorted(variables.items()):
        if not _VARIABLE.match(name):
            raise EventBridgeError("environment_from_event: %r is not a valid environment variable name" % name)
        if not isinstance(path, str) or not path.startswith("$"):
            raise EventBridgeError("environment_from_event.%s must be a JSON path into the event ($.detail...)" % name)
        key = name.lower()
        paths[key] = path
        environment.append({"name": name, "value": "<%s>" % key})
    template = json.dumps(
        {"containerOverrides": [{"name": container, "environment": environment}]}, separators=(",", ":")
    )
    return {"InputPathsMap": paths, "InputTemplate": template}


def ecs_target(params, cluster_arn, task_definition):
    """The PutTargets target of the options; ``task_definition`` is DescribeTaskDefinition's."""
    reference = params["task_definition"]
    arn = task_definition["taskDefinitionArn"]
    if ":" not in reference.rsplit("/", 1)[-1]:
        # A family: the target runs its latest ACTIVE revision at each event.
        arn = arn.rsplit(":", 1)[0]
    ecs = {"TaskDefinitionArn": arn, "TaskCount": params.get("task_count") or 1}
    if params.get("launch_type"):
        ecs["LaunchType"] = params["launch_type"]
    if params.get("capacity_provider_strategy"):
        ecs["CapacityProviderStrategy"] = [
            dict(
                {"capacityProvider": s["capacity_provider"]},
                **{k: s[k] for k in ("weight", "base") if s.get(k) is not None},
            )
            for s in params["capacity_provider_strategy"]
        ]
    network = ecs_rules.network_configuration(params.get("network_configuration"))
    if network:
        vpc = network["awsvpcConfiguration"]
        ecs["NetworkConfiguration"] = {
            "awsvpcConfiguration": {
                "Subnets": vpc["subnets"],
                "SecurityGroups": vpc["securityGroups"],
                "AssignPublicIp": vpc["assignPublicIp"],
            }
        }
    elif task_definition.get("networkMode") == "awsvpc":
        raise EventBridgeError(
            "%s uses the awsvpc network mode (as Fargate does): give network_configuration.subnets" % arn
        )
    for option, field in (
        ("platform_version", "PlatformVersion"),
        ("group", "Group"),
        ("propagate_tags", "PropagateTags"),
    ):
        if params.get(option):
            ecs[field] = params[option]
    if params.get("enable_ecs_managed_tags"):
        ecs["EnableECSManagedTags"] = True
    if params.get("tags"):
        ecs["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in sorted(params["tags"].items())]
    target = {"Id": params["target_id"], "Arn": cluster_arn, "RoleArn": params["role_arn"], "EcsParameters": ecs}
    target.update(_input(params, task_definition))
    retry = params.get("retry_policy") or {}
    if retry.get("maximum_retry_attempts") is not None or retry.get("maximum_event_age_in_seconds") is not None:
        target["RetryPolicy"] = {
            k: retry[o]
            for o, k in (
                ("maximum_retry_attempts", "MaximumRetryAttempts"),
                ("maximum_event_age_in_seconds", "MaximumEventAgeInSeconds"),
            )
            if retry.get(o) is not None
        }
    if params.get("dead_letter_arn"):
        target["DeadLetterConfig"] = {"Arn": params["dead_letter_arn"]}
    return target


def _input(params, task_definition):
    given = [k for k in ("input", "input_transformer", "environment_from_event") if params.get(k)]
    if len(given) > 1:
        raise EventBridgeError("give only one of input, input_transformer and environment_from_event, not %s" % given)
    if params.get("input"):
        value = params["input"]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
        try:
            json.loads(text)
        except ValueError as exc:
            raise EventBridgeError("input must be JSON (the task's overrides): %s" % exc) from None
        return {"Input": text}
    if params.get("input_transformer"):
        transformer = params["input_transformer"]
        return {
            "InputTransformer": {
                "InputPathsMap": dict(transformer.get("input_paths_map") or {}),
                "InputTemplate": transformer["input_template"],
            }
        }
    if params.get("environment_from_event"):
        container = ecs_rules.followed_container(task_definition, params.get("container"))
        return {"InputTransformer": environment_transformer(container, params["environment_from_event"])}
    return {}


def _normal(value):
    """Without empty values, so that what AWS echoes compares to what was asked."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in sorted(value.items()) if v not in (None, [], {}, "")}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def same_target(current, wanted):
    if current is None:
        return False
    a, b = _normal(current), _normal(wanted)
    for side in (a, b):
        vpc = ((side.get("EcsParameters") or {}).get("NetworkConfiguration") or {}).get("awsvpcConfiguration")
        if vpc is not None:
            vpc.setdefault("AssignPublicIp", "DISABLED")
        (side.get("EcsParameters") or {}).setdefault("TaskCount", 1)
    return a == b


# ----------------------------------------------------------------------- AWS calls


class EventsApi:
    def __init__(self, events, ecs):
        self.events = events
        self.ecs = ecs

    def rule(self, name, bus):
        try:
            return self.events.describe_rule(aws_retry=True, Name=name, EventBusName=bus)
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise

    def put_rule(self, name, bus, pattern, description, state):
        params = {"Name": name, "EventBusName": bus, "EventPattern": pattern, "State": state}
        if description:
            params["Description"] = description
        return self.events.put_rule(aws_retry=True, **params)["RuleArn"]

    def target(self, rule, bus, target_id):
        params = {"Rule": rule, "EventBusName": bus}
        while True:
            answer = self.events.list_targets_by_rule(aws_retry=True, **params)
            for target in answer.get("Targets", []):
                if target.get("Id") == target_id:
                    return target
            if not answer.get("NextToken"):
                return None
            params["NextToken"] = answer["NextToken"]

    def put_target(self, rule, bus, target):
        answer = self.events.put_targets(aws_retry=True, Rule=rule, EventBusName=bus, Targets=[target])
        if answer.get("FailedEntryCount"):
            entry = answer["FailedEntries"][0]
            raise EventBridgeError(
                "PutTargets refused %s: %s %s" % (target["Id"], entry.get("ErrorCode"), entry.get("ErrorMessage"))
            )

    def remove_target(self, rule, bus, target_id):
        self.events.remove_targets(aws_retry=True, Rule=rule, EventBusName=bus, Ids=[target_id])

    def cluster_arn(self, cluster):
        answer = self.ecs.describe_clusters(aws_retry=True, clusters=[cluster])
        found = [c for c in answer.get("clusters", []) if c.get("status") == "ACTIVE"]
        if not found:
            raise EventBridgeError("cluster %r does not exist (or is not ACTIVE); create it first" % cluster)
        return found[0]["clusterArn"]

    def task_definition(self, reference):
        ecs_rules.check_task_definition(reference)
        try:
            return self.ecs.describe_task_definition(aws_retry=True, taskDefinition=reference)["taskDefinition"]
        except Exception as exc:
            if _code(exc) in ("ClientException", "InvalidParameterException"):
                raise EventBridgeError("task definition %r not found; register it first" % reference) from None
            raise


def _code(exc):
    response = getattr(exc, "response", None)
    return (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None


def ensure(api, params, check_mode):
    """Make the rule (when a pattern is given) and the target as asked; the module's result."""
    check_names(params)
    rule, bus = params["rule"], params.get("event_bus_name") or "default"
    current_rule = api.rule(rule, bus)
    changed, diff_before, diff_after = False, {}, {}
    if params["state"] == "absent":
        current = api.target(rule, bus, params["target_id"]) if current_rule else None
        if current is not None:
            changed = True
            if not check_mode:
                api.remove_target(rule, bus, params["target_id"])
        return {
            "changed": changed,
            "rule_arn": (current_rule or {}).get("Arn"),
            "target": None,
            "diff": {"before": {"target": current}, "after": {"target": None}},
        }
    pattern = event_pattern(params.get("event_pattern"))
    wanted_state = "ENABLED" if params.get("enabled", True) else "DISABLED"
    if current_rule is None and pattern is None:
        raise EventBridgeError("rule %s does not exist on event bus %s: give event_pattern to create it" % (rule, bus))
    rule_arn = (current_rule or {}).get("Arn")
    if pattern is not None:
        rule_changed = current_rule is None or not (
            same_pattern(current_rule.get("EventPattern"), pattern)
            and current_rule.get("State") == wanted_state
            and (current_rule.get("Description") or None) == (params.get("description") or None)
        )
        if rule_changed:
            changed = True
            diff_before["rule"] = _rule_view(current_rule)
            diff_after["rule"] = {
                "EventPattern": pattern,
                "State": wanted_state,
                "Description": params.get("description"),
            }
            if not check_mode:
                rule_arn = api.put_rule(rule, bus, pattern, params.get("description"), wanted_state)
    cluster_arn = api.cluster_arn(params["cluster"])
    task_definition = api.task_definition(params["task_definition"])
    target = ecs_target(params, cluster_arn, task_definition)
    current = api.target(rule, bus, params["target_id"]) if current_rule else None
    if not same_target(current, target):
        changed = True
        diff_before["target"] = current
        diff_after["target"] = target
        if not check_mode:
            api.put_target(rule, bus, target)
    return {
        "changed": changed,
        "rule_arn": rule_arn,
        "target": target,
        "diff": {"before": diff_before, "after": diff_after},
    }


def _rule_view(rule):
    if not rule:
        return None
    return {k: rule.get(k) for k in ("EventPattern", "State", "Description")}

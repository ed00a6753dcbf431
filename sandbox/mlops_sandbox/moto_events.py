"""EventBridge rules whose targets are ECS tasks, for the sandbox's moto server.

moto's PutEvents raises NotImplementedError (a 500) when an event matches a rule with an
ECS target. Here such a target runs its task as EventBridge does, after the event is
accepted (PutEvents answers at once; the invocation is asynchronous):

- the target's input -- ``Input`` (constant JSON), ``InputPath`` (a part of the event) or
  ``InputTransformer`` (``InputPathsMap`` + ``InputTemplate``), with AWS's placeholder
  rules (see ``transform``) -- becomes the task's ``overrides`` (for example
  ``{"containerOverrides": [{"name": "train", "environment": [...]}]}``); no input, no
  overrides;
- the target's ``RoleArn`` (the events role) is assumed, and ``RunTask`` is called with its
  credentials, so the call is the events role's: ``taskDefinition``, ``count``,
  ``launchType`` / ``capacityProviderStrategy``, ``networkConfiguration`` (EventBridge's
  ``awsvpcConfiguration`` with ``Subnets``, ``SecurityGroups``, ``AssignPublicIp``),
  ``platformVersion``, ``group``, ``tags``, ``propagateTags``, ``referenceId``,
  ``enableECSManagedTags``, ``enableExecuteCommand``, placement; ``startedBy`` is
  ``events-rule/<rule name>`` (cut to ECS's 36 characters).

A failed invocation (the role cannot be assumed, RunTask refused) is logged in moto's log,
as EventBridge counts it in ``FailedInvocations``; the other targets of the rule go to
moto as before.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import re
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("mlops_sandbox.events")

_PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_MISSING = object()


# --------------------------------------------------------------------------- input


def json_path(document: Any, path: str) -> Any:
    """The value at a simple JSONPath (``$``, ``$.detail.image-tag``, ``$.resources[0]``,
    ``$['detail']``); ``_MISSING`` when the event has no such value."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r} is not a JSON path (it starts with $)")
    value, position = document, 1
    while position < len(path):
        match = _PATH_PART.match(path, position)
        if match is None:
            raise ValueError(f"cannot read the JSON path {path!r} at {path[position:]!r}")
        key, index, quoted, double = match.groups()
        name = key if key is not None else quoted if quoted is not None else double
        if index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                return _MISSING
            value = value[int(index)]
        else:
            if not isinstance(value, dict) or name not in value:
                return _MISSING
            value = value[name]
        position = match.end()
    return value


def transform(template: str, paths_map: dict[str, str], event: dict, predefined: dict[str, Any]) -> str:
    """``InputTemplate`` with its placeholders replaced, as EventBridge does: inside a
    quoted string a value goes in as text (a string as it is, anything else as its JSON),
    escaped for JSON; outside quotes as JSON (a string with its quotes). A path the event
    lacks gives ``null`` (an empty text inside quotes). Unknown ``<...>`` stays as it is."""
    values = {name: json_path(event, path) for name, path in paths_map.items()}
    values.update(predefined)
    out: list[str] = []
    in_string = False
    position = 0
    while position < len(template):
        char = template[position]
        if char == '"' and (position == 0 or template[position - 1] != "\\"):
            in_string = not in_string
        elif char == "<":
            end = template.find(">", position)
            name = template[position + 1 : end] if end > 0 else None
            if name is not None and name in values:
                value = values[name]
                if in_string:
                    text = "" if value is _MISSING or value is None else value
                    text = text if isinstance(text, str) else json.dumps(text, separators=(",", ":"))
                    out.append(json.dumps(text)[1:-1])
                else:
                    out.append("null" if value is _MISSING else json.dumps(value, separators=(",", ":")))
                position = end + 1
                continue
        out.append(char)
        position += 1
    return "".join(out)


def target_input(target: dict, event: dict, rule_name: str, rule_arn: str) -> str | None:
    """What EventBridge sends the target: the text of Input, InputPath or InputTransformer;
    None when the target has none of them (an ECS task then runs without overrides)."""
    if target.get("Input") is not None:
        return target["Input"]
    if target.get("InputPath"):
        value = json_path(event, target["InputPath"])
        return "null" if value is _MISSING else json.dumps(value)
    transformer = target.get("InputTransformer")
    if transformer:
        predefined = {
            "aws.events.rule-arn": rule_arn,
            "aws.events.rule-name": rule_name,
            "aws.events.event.ingestion-time": event.get("ingestion-time"),
            "aws.events.event": event,
            "aws.events.event.json": event,
        }
        return transform(
            transformer.get("InputTemplate") or "", transformer.get("InputPathsMap") or {}, event, predefined
        )
    return None


def run_task_request(target: dict, rule_name: str, overrides: dict | None) -> dict:
    """The RunTask parameters of an ECS target (EventBridge's EcsParameters)."""
    params = target.get("EcsParameters") or {}
    request: dict[str, Any] = {
        "cluster": target["Arn"],
        "taskDefinition": params["TaskDefinitionArn"],
        "count": int(params.get("TaskCount") or 1),
        "startedBy": f"events-rule/{rule_name}"[:36],
    }
    if overrides:
        request["overrides"] = overrides
    simple = {
        "LaunchType": "launchType",
        "PlatformVersion": "platformVersion",
        "Group": "group",
        "PropagateTags": "propagateTags",
        "ReferenceId": "referenceId",
        "EnableECSManagedTags": "enableECSManagedTags",
        "EnableExecuteCommand": "enableExecuteCommand",
    }
    for key, name in simple.items():
        if params.get(key) is not None:
            request[name] = params[key]
    vpc = (params.get("NetworkConfiguration") or {}).get("awsvpcConfiguration")
    if vpc:
        request["networkConfiguration"] = {
            "awsvpcConfiguration": {
                "subnets": vpc.get("Subnets") or [],
                "securityGroups": vpc.get("SecurityGroups") or [],
                "assignPublicIp": vpc.get("AssignPublicIp") or "DISABLED",
            }
        }
    if params.get("CapacityProviderStrategy"):
        request["capacityProviderStrategy"] = params["CapacityProviderStrategy"]
    if params.get("PlacementConstraints"):
        request["placementConstraints"] = params["PlacementConstraints"]
    if params.get("PlacementStrategy"):
        request["placementStrategy"] = params["PlacementStrategy"]
    if params.get("Tags"):
        request["tags"] = [{"key": t["Key"], "value": t["Value"]} for t in params["Tags"]]
    return request


# --------------------------------------------------------------------------- invocation


def invoke(agent, rule_name: str, rule_arn: str, region: str, target: dict, event: dict) -> str | None:
    """Run the target's task as the events role; the task ARN, or None (logged) when it failed."""
    where = f"rule {rule_name} target {target.get('Id')}"
    try:
        text = target_input(target, event, rule_name, rule_arn)
        overrides = json.loads(text) if text is not None else None
        if overrides is not None and not isinstance(overrides, dict):
            raise ValueError(f"the input is not a JSON object (task overrides): {text[:200]}")
        request = run_task_request(target, rule_name, overrides)
    except (KeyError, ValueError) as exc:
        log.warning("%s: invalid ECS target input: %s", where, exc)
        return None
    role = target.get("RoleArn")
    if not role:
        log.warning("%s: an ECS target needs RoleArn (the role EventBridge runs the task as)", where)
        return None
    try:
        credentials = agent.assume(role, f"events-{rule_name}"[:64], region)
        answer = agent.client("ecs", credentials, region).run_task(**request)
    except (BotoCoreError, ClientError) as exc:
        log.warning("%s: RunTask as %s failed: %s", where, role, exc)
        return None
    if answer.get("failures"):
        log.warning("%s: RunTask failures: %s", where, answer["failures"])
    arns = [t["taskArn"] for t in answer.get("tasks", [])]
    log.info("%s: RunTask as %s started %s", where, role, ", ".join(arns) or "nothing")
    return arns[0] if arns else None


def install(config, agent) -> None:
    """Patch moto's Rule.send_to_targets: ECS targets run their task; idempotent."""
    from moto.events import models as events
    from moto.utilities.arns import parse_arn

    if getattr(events.Rule.send_to_targets, "_mlops_sandbox", False):
        return
    send = events.Rule.send_to_targets

    def send_with_ecs(self, original_event, transform_input=True):
        ecs_targets = [t for t in self.targets if parse_arn(t["Arn"]).service == "ecs"]
        if ecs_targets and self.event_pattern.matches_event(original_event):
            event = copy.deepcopy(original_event)
            if isinstance(event.get("time"), (int, float)):
                event["time"] = datetime.datetime.fromtimestamp(event["time"], datetime.UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
            for target in ecs_targets:
                threading.Thread(
                    target=invoke,
                    args=(agent, self.name, self.arn, self.region_name, target, event),
                    name=f"events-{self.name}",
                    daemon=True,
                ).start()
        others = [t for t in self.targets if t not in ecs_targets]
        if others:
            rule = copy.copy(self)
            rule.targets = others
            send(rule, original_event, transform_input)

    send_with_ecs._mlops_sandbox = True  # type: ignore[attr-defined]
    events.Rule.send_to_targets = send_with_ecs

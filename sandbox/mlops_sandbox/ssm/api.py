"""The Run Command actions of the SSM API, in the shapes and with the errors AWS uses.

Each handler takes the decoded JSON request and the caller's account, and returns the
JSON response; errors are ``SsmError`` with the code boto3 raises. Requests are first
checked against botocore's model (``shapes.validate``), then against the rules of the
action. As on AWS, a caller sees the managed instances and the commands of its own account
only: another account's instance is an InvalidInstanceId, its commands are not listed.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from datetime import UTC, datetime

from . import documents, fold, shapes
from .engine import Command, Engine, Invocation, Plugin
from .errors import SsmError, invalid_instance_ids
from .instances import Instance, Registry

STDOUT_LIMIT = 24000  # GetCommandInvocation StandardOutputContent
STDERR_LIMIT = 8000  # GetCommandInvocation StandardErrorContent
PLUGIN_OUTPUT_LIMIT = 2500  # CommandPlugin.Output in ListCommandInvocations
DEFAULT_PAGE = 50
INSTANCE_FILTER_KEYS = (
    "InstanceIds",
    "AgentVersion",
    "PingStatus",
    "PlatformTypes",
    "ActivationIds",
    "IamRole",
    "ResourceType",
    "AssociationStatus",
)
# DescribeInstanceProperties: its filter keys (InstancePropertyFilterKey) and the InstanceProperty
# field each compares; the operators of FiltersWithOperator.
PROPERTY_FILTER_FIELDS = {"InstanceIds": "InstanceId", "PingStatus": "PingStatus", "PlatformTypes": "PlatformType"}
PROPERTY_OPERATORS = {
    "Equal": lambda value, values: value in values,
    "NotEqual": lambda value, values: value not in values,
    "BeginWith": lambda value, values: any(str(value).startswith(v) for v in values),
}
NOTIFICATION_CONFIG = {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}


def iso(ts: float | None) -> str:
    """GetCommandInvocation's string dates: 2023-05-07T22:13:33.797Z ('' when not reached)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def elapsed(seconds: float | None) -> str:
    """ISO-8601 duration as AWS writes ExecutionElapsedTime: PT1H0.271S, PT12.5S."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT"
    if hours >= 1:
        text += f"{int(hours)}H"
    if minutes >= 1:
        text += f"{int(minutes)}M"
    return text + f"{secs:.3f}".rstrip("0").rstrip(".") + "S"


def plugin_output(plugin: Plugin) -> str:
    """CommandPlugin.Output: stdout, then stderr after AWS's separator, cut at 2,500 characters."""
    text = plugin.stdout
    if plugin.stderr:
        text += "\n----------ERROR-------\n" + plugin.stderr
    if len(text) > PLUGIN_OUTPUT_LIMIT:
        marker = "\n---Output truncated---"
        text = text[: PLUGIN_OUTPUT_LIMIT - len(marker)] + marker
    return text


def encode_token(offset: int, scope: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "s": scope}).encode()).decode()


def decode_token(token: str | None, scope: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["s"] != scope or not isinstance(data["o"], int) or data["o"] < 0:
            raise ValueError
        return data["o"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SsmError("InvalidNextToken", "The specified token isn't valid.") from None


def page(items: list, request: dict, scope: str) -> tuple[list, str | None]:
    size = request.get("MaxResults") or DEFAULT_PAGE
    start = decode_token(request.get("NextToken"), scope)
    chunk = items[start : start + size]
    more = start + size < len(items)
    return chunk, encode_token(start + size, scope) if more else None


class Api:
    def __init__(self, engine: Engine, registry: Registry, ec2, account_id: str, region: str) -> None:
        self.engine = engine
        self.registry = registry
        self.ec2 = ec2
        self.account_id = account_id
        self.region = region
        self.handlers = {
            "SendCommand": self.send_command,
            "ListCommands": self.list_commands,
            "ListCommandInvocations": self.list_command_invocations,
            "GetCommandInvocation": self.get_command_invocation,
            "CancelCommand": self.cancel_command,
            "DescribeInstanceInformation": self.describe_instance_information,
            "DescribeInstanceProperties": self.describe_instance_properties,
        }

    def handles(self, action: str) -> bool:
        return action in self.handlers

    def call(self, action: str, request: dict, account: str | None = None) -> dict:
        shapes.validate(action, request)
        return self.handlers[action](request, account or self.account_id)

    def _mine(self, account: str) -> dict[str, Instance]:
        """The managed instances of ``account``, in the order they were registered."""
        return {i: inst for i, inst in self.registry.by_id.items() if inst.account == account}

    # -- SendCommand -----------------------------------------------------------------
    def send_command(self, req: dict, account: str) -> dict:
        instance_ids, targets = req.get("InstanceIds") or [], req.get("Targets") or []
        if bool(instance_ids) == bool(targets):
            raise SsmError("InvalidParameters", "Specify either InstanceIds or Targets (one of them, not both).")
        doc = documents.get(req["DocumentName"], req.get("DocumentVersion"))
        values = doc.resolve(req.get("Parameters"))
        instances = self._resolve(instance_ids, targets, account)
        command = Command(
            id=str(uuid.uuid4()),
            document=doc,
            version=req.get("DocumentVersion") or "$DEFAULT",
            comment=req.get("Comment", ""),
            parameters=req.get("Parameters") or {},
            instance_ids=list(instance_ids),
            targets=list(targets),
            requested=time.time(),
            timeout=req.get("TimeoutSeconds") or 3600,
            max_concurrency=req.get("MaxConcurrency") or "50",
            max_errors=req.get("MaxErrors") or "0",
            cloudwatch={
                "CloudWatchLogGroupName": (req.get("CloudWatchOutputConfig") or {}).get("CloudWatchLogGroupName", ""),
                "CloudWatchOutputEnabled": bool(
                    (req.get("CloudWatchOutputConfig") or {}).get("CloudWatchOutputEnabled", False)
                ),
            },
            steps=doc.plan(values),
            account=account,
        )
        self.engine.submit(command, instances)
        with self.engine.lock:
            return {"Command": self._command(command, sending=True)}

    def _resolve(self, instance_ids: list[str], targets: list[dict], account: str) -> list[Instance]:
        mine = self._mine(account)
        if instance_ids:
            wanted = list(dict.fromkeys(instance_ids))
            unknown = [i for i in wanted if i not in mine]
            if unknown:
                raise invalid_instance_ids(unknown, account)
            return [mine[i] for i in wanted]
        selected: set[str] | None = None
        for target in targets:
            key, values = target.get("Key", ""), target.get("Values") or []
            if key == "InstanceIds":
                unknown = [i for i in values if i not in mine]
                if unknown:
                    raise invalid_instance_ids(unknown, account)
                ids = set(values)
            elif key.startswith("tag:") or key == "tag-key":
                ids = self.ec2.by_target(key, values, account)
            else:
                raise SsmError(
                    "InvalidParameters",
                    f"Target key {key!r} is not supported here; use tag:<key>, tag-key or InstanceIds",
                )
            selected = ids if selected is None else selected & ids
        chosen = selected or set()
        # Managed instances only, in the order they were registered.
        return [inst for inst in mine.values() if inst.instance_id in chosen]

    # -- views ---------------------------------------------------------------------------
    def _command(self, cmd: Command, sending: bool = False) -> dict:
        details = [inv.details for inv in cmd.invocations.values()]
        status, status_details = ("Pending", "Pending") if sending else cmd.status()
        counts = fold.command_counts(details)
        target_count = len(cmd.invocations)
        if sending:
            counts = {"CompletedCount": 0, "ErrorCount": 0, "DeliveryTimedOutCount": 0}
            # Targets are resolved after SendCommand answers, as in AWS.
            target_count = len(cmd.instance_ids)
        return {
            "CommandId": cmd.id,
            "DocumentName": cmd.document.name,
            "DocumentVersion": cmd.version,
            "Comment": cmd.comment,
            "ExpiresAfter": cmd.expires_after,
            "Parameters": cmd.parameters,
            "InstanceIds": cmd.instance_ids,
            "Targets": cmd.targets,
            "RequestedDateTime": cmd.requested,
            "Status": status,
            "StatusDetails": status_details,
            "OutputS3Region": self.region,
            "OutputS3BucketName": "",
            "OutputS3KeyPrefix": "",
            "MaxConcurrency": cmd.max_concurrency,
            "MaxErrors": cmd.max_errors,
            "TargetCount": target_count,
            **counts,
            "ServiceRole": "",
            "NotificationConfig": NOTIFICATION_CONFIG,
            "CloudWatchOutputConfig": cmd.cloudwatch,
            "TimeoutSeconds": cmd.timeout,
        }

    def _invocation(self, inv: Invocation, details: bool) -> dict:
        cmd = inv.command
        view = {
            "CommandId": cmd.id,
            "InstanceId": inv.instance_id,
            "InstanceName": inv.instance.fqdn,
            "Comment": cmd.comment,
            "DocumentName": cmd.document.name,
            "DocumentVersion": cmd.version,
            "RequestedDateTime": cmd.requested,
            "Status": inv.status,
            "StatusDetails": inv.details,
            "TraceOutput": "",
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "CommandPlugins": [],
            "ServiceRole": "",
            "NotificationConfig": NOTIFICATION_CONFIG,
            "CloudWatchOutputConfig": cmd.cloudwatch,
        }
        if details:
            view["CommandPlugins"] = [self._plugin(p) for p in inv.plugins]
        return view

    def _plugin(self, plugin: Plugin) -> dict:
        view = {
            "Name": plugin.step.name,
            "Status": plugin.status,
            "StatusDetails": plugin.details,
            "ResponseCode": plugin.code,
            "Output": plugin_output(plugin),
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "OutputS3Region": self.region,
            "OutputS3BucketName": "",
            "OutputS3KeyPrefix": "",
        }
        if plugin.started is not None:
            view["ResponseStartDateTime"] = plugin.started
        if plugin.finished is not None:
            view["ResponseFinishDateTime"] = plugin.finished
        return view

    # -- listing ---------------------------------------------------------------------------
    def _filter_commands(self, filters: list[dict], *, for_invocations: bool) -> list:
        allowed = fold.INVOCATION_FILTER_STATUSES if for_invocations else fold.COMMAND_FILTER_STATUSES
        checks = []
        for item in filters:
            key, value = item["key"], item["value"]
            if key in ("InvokedAfter", "InvokedBefore"):
                try:
                    when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    raise SsmError(
                        "ValidationException", f"Filter {key} value {value!r} is not a date like 2024-07-07T00:00:00Z"
                    ) from None
                if key == "InvokedAfter":
                    checks.append(lambda obj, w=when: obj["requested"] >= w)
                else:
                    checks.append(lambda obj, w=when: obj["requested"] <= w)
            elif key == "Status":
                if value not in allowed:
                    raise SsmError(
                        "ValidationException", f"Status filter value {value!r} is not one of {sorted(allowed)}"
                    )
                checks.append(lambda obj, v=value: fold.matches_status_filter(obj["status"], obj["details"], v))
            elif key == "DocumentName":
                checks.append(lambda obj, v=value: obj["document"] == v)
            elif key == "ExecutionStage":
                if for_invocations or value not in ("Executing", "Complete"):
                    raise SsmError("InvalidFilterKey", f"ExecutionStage {value!r} applies to ListCommands only")
                checks.append(lambda obj, v=value: obj["stage"] == v)
        return checks

    def list_commands(self, req: dict, account: str) -> dict:
        checks = self._filter_commands(req.get("Filters") or [], for_invocations=False)
        now = time.time()
        with self.engine.lock:
            found = []
            for cmd in reversed(self.engine.commands.values()):
                if cmd.account != account:
                    continue
                if req.get("CommandId") and cmd.id != req["CommandId"]:
                    continue
                if req.get("InstanceId") and req["InstanceId"] not in cmd.invocations:
                    continue
                fanned_out = self.engine.timing.listed(cmd.requested, now)
                status, details = cmd.status() if fanned_out else ("Pending", "Pending")
                facts = {
                    "requested": cmd.requested,
                    "status": status,
                    "details": details,
                    "document": cmd.document.name,
                    "stage": "Complete" if cmd.done else "Executing",
                }
                if all(check(facts) for check in checks):
                    found.append((cmd, fanned_out))
            chunk, token = page(found, req, "commands")
            answer: dict = {"Commands": [self._command(cmd, sending=not fanned_out) for cmd, fanned_out in chunk]}
        if token:
            answer["NextToken"] = token
        return answer

    def list_command_invocations(self, req: dict, account: str) -> dict:
        checks = self._filter_commands(req.get("Filters") or [], for_invocations=True)
        now = time.time()
        with self.engine.lock:
            found = []
            for cmd in reversed(self.engine.commands.values()):
                if cmd.account != account:
                    continue
                if req.get("CommandId") and cmd.id != req["CommandId"]:
                    continue
                if not self.engine.timing.listed(cmd.requested, now):
                    continue  # eventual consistency: not fanned out to its invocations yet
                for inv in cmd.invocations.values():
                    if req.get("InstanceId") and inv.instance_id != req["InstanceId"]:
                        continue
                    facts = {
                        "requested": cmd.requested,
                        "status": inv.status,
                        "details": inv.details,
                        "document": cmd.document.name,
                    }
                    if all(check(facts) for check in checks):
                        found.append(inv)
            chunk, token = page(found, req, "invocations")
            answer: dict = {"CommandInvocations": [self._invocation(inv, bool(req.get("Details"))) for inv in chunk]}
        if token:
            answer["NextToken"] = token
        return answer

    def get_command_invocation(self, req: dict, account: str) -> dict:
        with self.engine.lock:
            cmd = self.engine.commands.get(req["CommandId"])
            cmd = cmd if cmd is not None and cmd.account == account else None
            inv = cmd.invocations.get(req["InstanceId"]) if cmd else None
            if inv is None or not self.engine.timing.listed(cmd.requested, time.time()):
                raise SsmError("InvocationDoesNotExist", "")
            name = req.get("PluginName")
            if name:
                plugin = inv.plugin(name)
                if plugin is None:
                    raise SsmError("InvalidPluginName", "")
                status, details = plugin.status, plugin.details
                if details == "Cancelling":
                    status = "Cancelling"
            else:
                # One-step documents: that step. Several steps: the invocation's status with the
                # step that ran last (for AWS-ApplyAnsiblePlaybooks, the playbook run).
                plugin = inv.current if len(inv.plugins) > 1 else inv.plugins[0]
                status, details = inv.status, inv.details
            end = plugin.finished
            start = plugin.started
            return {
                "CommandId": cmd.id,
                "InstanceId": inv.instance_id,
                "Comment": cmd.comment,
                "DocumentName": cmd.document.name,
                "DocumentVersion": cmd.version,
                "PluginName": plugin.step.name,
                "ResponseCode": plugin.code,
                "ExecutionStartDateTime": iso(start),
                "ExecutionElapsedTime": elapsed(None if start is None else (end or time.time()) - start),
                "ExecutionEndDateTime": iso(end),
                "Status": status,
                "StatusDetails": details,
                "StandardOutputContent": plugin.stdout[:STDOUT_LIMIT],
                "StandardOutputUrl": "",
                "StandardErrorContent": plugin.stderr[:STDERR_LIMIT],
                "StandardErrorUrl": "",
                "CloudWatchOutputConfig": cmd.cloudwatch,
            }

    def cancel_command(self, req: dict, account: str) -> dict:
        cmd = self.engine.commands.get(req["CommandId"])
        if cmd is None or cmd.account != account:
            raise SsmError("InvalidCommandId", "")
        ids = req.get("InstanceIds") or None
        if ids:
            unknown = [i for i in ids if i not in cmd.invocations]
            if unknown:
                raise invalid_instance_ids(unknown, account)
        self.engine.cancel(cmd, ids)
        return {}

    # -- DescribeInstanceInformation ------------------------------------------------------
    def describe_instance_information(self, req: dict, account: str) -> dict:
        filters, legacy = req.get("Filters") or [], req.get("InstanceInformationFilterList") or []
        if filters and legacy:
            raise SsmError(
                "InvalidFilterKey", "Filters and InstanceInformationFilterList cannot be used in the same request"
            )
        conditions = [(f["Key"], f["Values"]) for f in filters] + [(f["key"], f["valueSet"]) for f in legacy]
        selected: set[str] | None = None
        for key, values in conditions:
            if key.startswith("tag:") or key == "tag-key":
                if legacy:
                    raise SsmError("InvalidFilterKey", f"{key} is not a key of InstanceInformationFilterList")
                chosen = self.ec2.by_target(key, values, account)
                selected = chosen if selected is None else selected & chosen
            elif key not in INSTANCE_FILTER_KEYS:
                raise SsmError(
                    "InvalidFilterKey", f"{key} is not a filter key (one of {', '.join(INSTANCE_FILTER_KEYS)})"
                )
            elif key == "InstanceIds":
                bad = [v for v in values if not shapes.valid_instance_id(v)]
                if bad:
                    raise invalid_instance_ids(bad, account)
        fields = {"PingStatus": "PingStatus", "PlatformTypes": "PlatformType", "InstanceIds": "InstanceId"}
        now = time.time()
        with self.engine.lock:
            infos = [
                i.information(now, self.engine.ping_timeout)
                for i in self._mine(account).values()
                if selected is None or i.instance_id in selected
            ]
        for key, values in conditions:
            if key in INSTANCE_FILTER_KEYS:
                infos = [info for info in infos if info.get(fields.get(key, key)) in values]
        chunk, token = page(infos, req, "instances")
        answer: dict = {"InstanceInformationList": chunk}
        if token:
            answer["NextToken"] = token
        return answer

    # -- DescribeInstanceProperties -------------------------------------------------------
    def describe_instance_properties(self, req: dict, account: str) -> dict:
        """The managed nodes, up to 1,000 a page (DescribeInstanceInformation: 50), with the
        filters of InstancePropertyFilterList (equality) or FiltersWithOperator."""
        legacy, with_operator = req.get("InstancePropertyFilterList") or [], req.get("FiltersWithOperator") or []
        if legacy and with_operator:
            raise SsmError(
                "InvalidFilterKey",
                "InstancePropertyFilterList and FiltersWithOperator cannot be used in the same request",
            )
        conditions = [(f["key"], f["valueSet"], "Equal") for f in legacy]
        conditions += [(f["Key"], f["Values"], f.get("Operator") or "Equal") for f in with_operator]
        for key, values, operator in conditions:
            if key not in PROPERTY_FILTER_FIELDS:
                raise SsmError(
                    "InvalidFilterKey",
                    f"{key} is not a filter key this sandbox answers (one of {', '.join(PROPERTY_FILTER_FIELDS)})",
                )
            if operator not in PROPERTY_OPERATORS:
                known = ", ".join(PROPERTY_OPERATORS)
                raise SsmError("InvalidFilterValue", f"operator {operator} is not one of {known}")
            if key == "InstanceIds":
                bad = [v for v in values if not shapes.valid_instance_id(v)]
                if bad:
                    raise invalid_instance_ids(bad, account)
        now = time.time()
        with self.engine.lock:
            props = [i.properties(now, self.engine.ping_timeout) for i in self._mine(account).values()]
        for key, values, operator in conditions:
            props = [p for p in props if PROPERTY_OPERATORS[operator](p.get(PROPERTY_FILTER_FIELDS[key]), values)]
        chunk, token = page(props, req, "properties")
        answer: dict = {"InstanceProperties": chunk}
        if token:
            answer["NextToken"] = token
        return answer

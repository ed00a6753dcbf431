"""The ARNs an AWS API call acts on, from its parameters (for the call log, ``calls.py``).

``resources(service, operation, params, region, account)``: ``service`` is the IAM
prefix, ``params`` the request's parameters by their API names (JSON body, query-protocol
form, REST path and query, with ``x-amz-copy-source`` as ``CopySource``). Only what the
parameters name: an operation that names no resource (``DescribeInstances``) gives none.
Where one call acts on resources in different roles, the order is fixed and
``iam_actions.py`` relies on it (CopyObject: destination object, then source object).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

Params = dict


def _list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v]
    return [str(value)] if value else []


def _s3(op: str, p: Params, region: str, account: str) -> list[str]:
    bucket = p.get("Bucket")
    if not bucket:
        return []
    out = [f"arn:aws:s3:::{bucket}/{p['Key']}" if p.get("Key") else f"arn:aws:s3:::{bucket}"]
    if p.get("CopySource"):
        source = urllib.parse.unquote(str(p["CopySource"]).split("?versionId=")[0]).lstrip("/")
        out.append(f"arn:aws:s3:::{source}")
    if op == "DeleteObjects":
        keys = [o.get("Key") for o in (p.get("Delete") or {}).get("Objects") or [] if isinstance(o, dict)]
        out = [f"arn:aws:s3:::{bucket}/{k}" for k in keys if k] or out
    return out


def ssm_parameter_arn(name: str, region: str, account: str) -> str:
    """``/a/b`` -> ``arn:aws:ssm:<region>:<acct>:parameter/a/b``; ``a`` -> ``.../parameter/a``."""
    if name.startswith("arn:"):
        return name
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def ssm_document_arn(name: str, region: str, account: str) -> str:
    """AWS's own documents (``AWS-*``) have no account in their ARN."""
    if name.startswith("arn:"):
        return name
    owner = "" if name.startswith(("AWS-", "AWSSupport-", "AmazonCloudWatch-")) else account
    return f"arn:aws:ssm:{region}:{owner}:document/{name}"


def ec2_instance_arn(instance_id: str, region: str, account: str) -> str:
    return f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"


def _ssm(op: str, p: Params, region: str, account: str) -> list[str]:
    if op == "SendCommand":
        out = [ssm_document_arn(p["DocumentName"], region, account)] if p.get("DocumentName") else []
        return out + [ec2_instance_arn(i, region, account) for i in _list(p.get("InstanceIds"))]
    if "Document" in op:
        return [ssm_document_arn(n, region, account) for n in _list(p.get("Name") or p.get("DocumentName"))]
    if op in ("GetParametersByPath",):
        return [ssm_parameter_arn(n, region, account) for n in _list(p.get("Path"))]
    if "Parameter" in op or op in ("AddTagsToResource", "ListTagsForResource", "RemoveTagsFromResource"):
        names = _list(p.get("Names")) or _list(p.get("Name")) or _list(p.get("ResourceId"))
        return [ssm_parameter_arn(n, region, account) for n in names]
    if op in ("CancelCommand", "ListCommandInvocations", "GetCommandInvocation", "ListCommands"):
        return [ec2_instance_arn(i, region, account) for i in _list(p.get("InstanceIds") or p.get("InstanceId"))]
    return []


def ecr_repository_arn(name: str, region: str, account: str) -> str:
    return f"arn:aws:ecr:{region}:{account}:repository/{name}"


def _ecr(op: str, p: Params, region: str, account: str) -> list[str]:
    registry = str(p.get("registryId") or account)
    names = _list(p.get("repositoryName")) or _list(p.get("repositoryNames"))
    return [ecr_repository_arn(n, region, registry) for n in names]


def logs_group_arn(group: str, region: str, account: str) -> str:
    return f"arn:aws:logs:{region}:{account}:log-group:{group}"


def _logs(op: str, p: Params, region: str, account: str) -> list[str]:
    group = p.get("logGroupName")
    if not group and p.get("logGroupIdentifier"):
        group = str(p["logGroupIdentifier"]).split(":log-group:")[-1]
    if not group:
        return []
    base = logs_group_arn(group, region, account)
    if p.get("logStreamName"):
        return [f"{base}:log-stream:{p['logStreamName']}"]
    return [base]


def _ecs(op: str, p: Params, region: str, account: str) -> list[str]:
    def arn(kind: str, value: str, cluster: str | None = None) -> str:
        if value.startswith("arn:"):
            return value
        if kind in ("service", "task") and cluster:
            return f"arn:aws:ecs:{region}:{account}:{kind}/{cluster.split('/')[-1]}/{value}"
        return f"arn:aws:ecs:{region}:{account}:{kind}/{value}"

    cluster = p.get("cluster")
    out: list[str] = []
    if op in ("RegisterTaskDefinition",) and p.get("family"):
        out.append(arn("task-definition", f"{p['family']}:*"))
    for value in _list(p.get("taskDefinition")):
        out.append(arn("task-definition", value))
    for value in _list(p.get("service")) + _list(p.get("services")) + _list(p.get("serviceName")):
        out.append(arn("service", value, cluster or "default"))
    for value in _list(p.get("task")) + _list(p.get("tasks")):
        out.append(arn("task", value, cluster or "default"))
    for value in _list(p.get("clusters")) + _list(p.get("clusterName")) + _list(cluster):
        out.append(arn("cluster", value))
    return out


def _ec2(op: str, p: Params, region: str, account: str) -> list[str]:
    return [ec2_instance_arn(i, region, account) for i in _list(p.get("InstanceIds") or p.get("InstanceId"))]


def _iam(op: str, p: Params, region: str, account: str) -> list[str]:
    out = []
    if p.get("RoleName"):
        out.append(f"arn:aws:iam::{account}:role/{p['RoleName']}")
    if p.get("InstanceProfileName"):
        out.append(f"arn:aws:iam::{account}:instance-profile/{p['InstanceProfileName']}")
    if p.get("UserName"):
        out.append(f"arn:aws:iam::{account}:user/{p['UserName']}")
    out += _list(p.get("PolicyArn"))
    return out


def _sts(op: str, p: Params, region: str, account: str) -> list[str]:
    return _list(p.get("RoleArn"))


def _efs(op: str, p: Params, region: str, account: str) -> list[str]:
    return [
        v if v.startswith("arn:") else f"arn:aws:elasticfilesystem:{region}:{account}:file-system/{v}"
        for v in _list(p.get("FileSystemId"))
    ]


def _events(op: str, p: Params, region: str, account: str) -> list[str]:
    rule = p.get("Rule") or (p.get("Name") if "Rule" in op else None)
    if not rule:
        return []
    bus = p.get("EventBusName")
    name = f"{bus}/{rule}" if bus and bus != "default" else rule
    return [f"arn:aws:events:{region}:{account}:rule/{name}"]


RULES: dict[str, Callable[[str, Params, str, str], list[str]]] = {
    "s3": _s3,
    "ssm": _ssm,
    "ecr": _ecr,
    "logs": _logs,
    "ecs": _ecs,
    "ec2": _ec2,
    "iam": _iam,
    "sts": _sts,
    "elasticfilesystem": _efs,
    "events": _events,
}


def resources(service: str, operation: str, params: Params, region: str | None, account: str | None) -> list[str]:
    rule = RULES.get(service)
    if rule is None or not isinstance(params, dict):
        return []
    try:
        found = rule(operation, params, region or "us-east-1", account or "")
    except (KeyError, TypeError, AttributeError, ValueError):
        return []
    return list(dict.fromkeys(found))

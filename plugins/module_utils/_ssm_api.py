# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every AWS call ssm_run_playbook makes, and the one place its clients are made.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

``connect(client, region)`` builds the ``SsmApi`` for both callers: the module
(``client`` is ``AnsibleAWSModule.client``) and its action plugin (``client`` is
amazon.aws's ``AWSPluginBase.client``); both take ``(service, retry_decorator=...)``
and wrap the client in amazon.aws's ``RetryingBotoClientWrapper``. Single calls pass
``aws_retry=True``; listings use boto3's paginators, the whole listing retried with
the same policy (``AWSRetry.jittered_backoff``, throttling included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as rules

# DescribeInstanceProperties' largest page (DescribeInstanceInformation's: 50).
PROPERTIES_PAGE_MAX = 1000
# How SSM and IAM say a role may not make a call.
DENIED_CODES = ("AccessDeniedException", "AccessDenied")

# Errors worth a retry besides the ones AWSRetry knows (SSM says ThrottlingException).
RETRY_EXTRA_CODES = ["ThrottlingException"]


def retry_decorator() -> Callable:
    """The retry policy of every call: jittered backoff, throttling included."""
    from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

    return AWSRetry.jittered_backoff(retries=10, delay=1, max_delay=20, catch_extra_error_codes=RETRY_EXTRA_CODES)


def connect(client: Callable[..., Any], region: str | None) -> SsmApi:
    """The SsmApi of ssm_run_playbook, from a client factory ``client(service,
    retry_decorator=...)``: SSM at once, EC2, CloudWatch Logs and ELBv2 when first needed."""
    retry = retry_decorator()
    return SsmApi(
        client("ssm", retry_decorator=retry),
        lambda: client("ec2", retry_decorator=retry),
        lambda: client("logs", retry_decorator=retry),
        region,
        retry=retry,
        elbv2=lambda: client("elbv2", retry_decorator=retry),
    )


class SsmApi:
    """Each AWS call ssm_run_playbook makes; plain boto3 answers out."""

    def __init__(
        self,
        ssm: Any,
        ec2: Any = None,
        logs: Any = None,
        region: str | None = None,
        retry: Callable[[Callable], Callable] | None = None,
        elbv2: Any = None,
    ) -> None:
        """``ec2`` and ``logs`` may be clients or functions that make one: they are made
        only when needed (tag targets; CloudWatch output; ``elbv2`` with target groups). ``retry`` decorates each
        paginated listing (none: listed once)."""
        self.ssm = ssm
        self._clients = {"ec2": ec2, "logs": logs, "elbv2": elbv2}
        self.region = region
        self._retry = retry or (lambda function: function)
        self.properties_allowed = True  # False once DescribeInstanceProperties was refused

    def _client(self, name: str) -> Any:
        client = self._clients[name]
        if callable(client):
            client = self._clients[name] = client()
        return client

    @property
    def ec2(self) -> Any:
        return self._client("ec2")

    @property
    def logs(self) -> Any:
        return self._client("logs")

    @property
    def elbv2(self) -> Any:
        return self._client("elbv2")

    @property
    def retry(self) -> Callable[[Callable], Callable]:
        return self._retry

    def _all(self, client: Any, operation: str, page_size: int, **params: Any) -> dict:
        """Every page of ``operation``, merged (``build_full_result``), retried as a whole."""

        def listing() -> dict:
            pages = client.get_paginator(operation).paginate(PaginationConfig={"PageSize": page_size}, **params)
            return pages.build_full_result()

        return self._retry(listing)()

    def describe_instances(self, filters: list[dict]) -> list[dict]:
        return self._all(self.ec2, "describe_instances", 1000, Filters=filters).get("Reservations", [])

    def instance_information(self, instance_ids: list[str]) -> list[dict]:
        found: list[dict] = []
        for chunk in rules.chunks(list(instance_ids), rules.DESCRIBE_INFO_FILTER_VALUES_MAX):
            answer = self._all(
                self.ssm,
                "describe_instance_information",
                rules.DESCRIBE_INFO_PAGE_MAX,
                Filters=[{"Key": "InstanceIds", "Values": chunk}],
            )
            found.extend(answer.get("InstanceInformationList", []))
        return found

    def agents(self, instance_ids: list[str]) -> list[dict]:
        """What SSM knows of these instances' agents (InstanceId, PingStatus,
        LastPingDateTime; an instance it does not manage is left out). Up to 50: one
        DescribeInstanceInformation call by their IDs. More: the region's managed nodes
        from DescribeInstanceProperties, 1,000 a page, read until every one is found (one
        call for a fleet of 1,000 instead of 20); DescribeInstanceInformation 50 a call
        when the role may not call it (``ssm:DescribeInstanceProperties``)."""
        if len(instance_ids) <= rules.DESCRIBE_INFO_FILTER_VALUES_MAX or not self.properties_allowed:
            return self.instance_information(instance_ids)
        try:
            return self.instance_properties(instance_ids)
        except is_boto3_error_code(DENIED_CODES):
            self.properties_allowed = False
            return self.instance_information(instance_ids)

    def instance_properties(self, instance_ids: list[str]) -> list[dict]:
        """The InstanceProperties of these instances: the region's managed nodes, page
        after page until all of them were seen (or the listing ends)."""
        wanted = set(instance_ids)

        def listing() -> list[dict]:
            found: dict[str, dict] = {}
            pages = self.ssm.get_paginator("describe_instance_properties").paginate(
                PaginationConfig={"PageSize": PROPERTIES_PAGE_MAX}
            )
            for page in pages:
                listed = page.get("InstanceProperties", [])
                found.update((p["InstanceId"], p) for p in listed if p["InstanceId"] in wanted)
                if len(found) == len(wanted):
                    break
            return list(found.values())

        return self._retry(listing)()

    def silent_instances(self) -> list[dict]:
        """The region's instances whose agent is not Online (ConnectionLost, Inactive): a
        page or so, whatever the fleet's size."""
        answer = self._all(
            self.ssm,
            "describe_instance_information",
            rules.DESCRIBE_INFO_PAGE_MAX,
            Filters=[{"Key": "PingStatus", "Values": ["ConnectionLost", "Inactive"]}],
        )
        return answer.get("InstanceInformationList", [])

    def send_command(self, **params: Any) -> dict:
        return self.ssm.send_command(aws_retry=True, **params)["Command"]

    def list_commands(self, command_ids: list[str], invoked_after: str | None = None) -> list[dict]:
        """The commands, by ID: one call for one command; for several, the commands
        sent since ``invoked_after`` (50 a page, until all are found) and any still
        missing by ID."""
        if len(command_ids) == 1 or invoked_after is None:
            found = []
            for command_id in command_ids:
                found.extend(self.ssm.list_commands(aws_retry=True, CommandId=command_id).get("Commands", []))
            return found
        wanted = set(command_ids)

        def since() -> dict[str, dict]:
            seen: dict[str, dict] = {}
            pages = self.ssm.get_paginator("list_commands").paginate(
                Filters=[{"key": "InvokedAfter", "value": invoked_after}],
                PaginationConfig={"PageSize": rules.LIST_PAGE_MAX},
            )
            for page in pages:
                seen.update((c["CommandId"], c) for c in page.get("Commands", []) if c["CommandId"] in wanted)
                if len(seen) == len(wanted):
                    break
            return seen

        found_by_id = self._retry(since)()
        missing = [cid for cid in command_ids if cid not in found_by_id]
        return list(found_by_id.values()) + (self.list_commands(missing) if missing else [])

    def list_invocations(self, command_id: str, details: bool = False) -> list[dict]:
        answer = self._all(
            self.ssm, "list_command_invocations", rules.LIST_PAGE_MAX, CommandId=command_id, Details=details
        )
        return answer.get("CommandInvocations", [])

    def invocations_of(self, command_id: str, instance_ids: list[str], workers: int = 10) -> list[dict]:
        """The invocation (Details) of each of these instances: one ListCommandInvocations
        call each, up to ``workers`` side by side."""
        from concurrent.futures import ThreadPoolExecutor

        def one(instance_id: str) -> list[dict]:
            answer = self.ssm.list_command_invocations(
                aws_retry=True, CommandId=command_id, InstanceId=instance_id, Details=True
            )
            return answer.get("CommandInvocations", [])

        if len(instance_ids) <= 1:
            return [entry for instance_id in instance_ids for entry in one(instance_id)]
        with ThreadPoolExecutor(max_workers=min(workers, len(instance_ids))) as pool:
            return [entry for found in pool.map(one, instance_ids) for entry in found]

    def cancel_command(self, command_id: str, instance_ids: list[str] | None = None) -> None:
        """CancelCommand: the whole command, or only these instances' invocations."""
        params = {"InstanceIds": instance_ids} if instance_ids else {}
        self.ssm.cancel_command(aws_retry=True, CommandId=command_id, **params)

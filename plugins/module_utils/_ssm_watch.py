# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Watching the hosts of a batch while their invocations run.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

An instance that dies mid-deploy leaves its invocation InProgress: the agent that would
end it (its execution timeout included) is gone, so SSM never does. ``HostWatcher`` is
a watcher of ``_ssm_follow.Follower``: at most once every ``interval`` seconds (a
minute), and only while some invocations are still running, it reads those instances'
PingStatus (DescribeInstanceInformation) and EC2 state (DescribeInstances); an instance
that stopped running, or whose agent SSM no longer hears from, is named with why
(``lost_reasons``), and the follower gives up on it.

Up to 50 instances: one DescribeInstanceInformation call by their IDs, one
DescribeInstances by their IDs. More: the region's instances that are *not* well, one
DescribeInstanceInformation filtered on PingStatus ConnectionLost/Inactive and one
DescribeInstances filtered on the states that are not running (a page each, whatever
the fleet's size), matched against the running ones.

SSM says ConnectionLost some minutes after the agent's last word (its health report
comes every 5 minutes), so a dead host is found within that delay plus one interval,
instead of the rollout's timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as rules
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import SsmApi

# Seconds between two looks at the hosts by default (ssm_run_playbook's
# host_check_interval; DescribeInstanceInformation is a listing: once a minute keeps it
# far below SSM's rate limits at any fleet size).
WATCH_INTERVAL = 60.0
# EC2 states of an instance that stopped running (pending is one that is starting).
NOT_RUNNING = ["stopping", "stopped", "shutting-down", "terminated"]


def lost_reasons(
    instance_ids: list[str], information: list[dict], reservations: list[dict] | None, by_id: bool = True
) -> dict[str, str]:
    """``{instance_id: reason}`` for the instances not worth waiting for: EC2 says it is
    not running (or does not list it), or SSM no longer hears its agent.

    ``information`` is an InstanceInformationList; ``reservations`` DescribeInstances'
    Reservations (None: EC2 was not asked). ``by_id``: both were asked for
    ``instance_ids``, so an instance missing from one is gone from it; otherwise they list
    the instances that are not well (PingStatus, EC2 state filters), and missing is fine.
    The EC2 state comes first: a stopped instance's agent is lost too, and "stopped"
    says more."""
    states = {}
    for reservation in reservations or []:
        for instance in reservation.get("Instances", []):
            states[instance["InstanceId"]] = (instance.get("State") or {}).get("Name")
    agents = {info["InstanceId"]: info for info in information}
    reasons = {}
    for instance_id in instance_ids:
        if reservations is not None and by_id and instance_id not in states:
            reasons[instance_id] = "is gone from EC2 (DescribeInstances does not list it)"
        elif states.get(instance_id, "running") != "running":
            reasons[instance_id] = "stopped running (EC2 state %s)" % states[instance_id]
        elif by_id and instance_id not in agents:
            reasons[instance_id] = "is no longer managed by SSM (DescribeInstanceInformation does not list it)"
        elif agents.get(instance_id, {}).get("PingStatus", "Online") != "Online":
            info = agents[instance_id]
            reasons[instance_id] = "lost its SSM agent (%s since %s)" % (
                info.get("PingStatus"),
                rules.iso_utc(info.get("LastPingDateTime")),
            )
    return reasons


class HostWatcher:
    """A ``Follower`` watcher: the running instances' PingStatus and EC2 state, at most
    once every ``interval`` seconds (not in a batch's first ``interval`` seconds: the
    pre-flight check has just seen them Online)."""

    def __init__(self, api: SsmApi, clock: Callable[[], float] = time.monotonic, interval: float = WATCH_INTERVAL):
        self.api = api
        self.clock = clock
        self.interval = interval
        self.looked_at: float | None = None
        self.looks = 0
        self.ec2_readable = True  # False once DescribeInstances was refused: SSM's word alone then

    def __call__(self, poll) -> dict[str, str]:
        running = list(poll.running or [])
        if not running or poll.elapsed < self.interval:
            return {}
        now = self.clock()
        if self.looked_at is not None and now - self.looked_at < self.interval:
            return {}
        self.looked_at = now
        self.looks += 1
        if len(running) <= rules.DESCRIBE_INFO_FILTER_VALUES_MAX:
            ec2 = self.ec2_states([[{"Name": "instance-id", "Values": running}]])
            return lost_reasons(running, self.api.instance_information(running), ec2)
        ec2 = self.ec2_states([[{"Name": "instance-state-name", "Values": NOT_RUNNING}]])
        return lost_reasons(running, self.api.silent_instances(), ec2, by_id=False)

    def ec2_states(self, queries: list[list[dict]]) -> list[dict] | None:
        """DescribeInstances' Reservations for each list of filters; None when EC2 refuses
        (a role with SSM rights only), and it is not asked again."""
        if not self.ec2_readable:
            return None
        from botocore.exceptions import ClientError

        reservations: list[dict] = []
        try:
            for filters in queries:
                reservations.extend(self.api.describe_instances(filters))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("UnauthorizedOperation", "AccessDenied"):
                raise
            self.ec2_readable = False
            return None
        return reservations

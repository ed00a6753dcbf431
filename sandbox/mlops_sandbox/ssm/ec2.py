"""What the SSM service asks moto's EC2: which running instances carry which tags, in
the caller's account (each account of moto has its own instances)."""

from __future__ import annotations

import threading
import time


class Ec2:
    """Answers are kept for ``ttl`` seconds: a client paging through a thousand instances
    (20 DescribeInstanceInformation calls) costs moto one look-up, not twenty."""

    def __init__(self, clients, ttl: float = 2.0) -> None:
        self.clients = clients  # aws.Clients: clients("ec2", account)
        self.ttl = ttl
        self.cache: dict[tuple, tuple[float, set[str]]] = {}
        self.lock = threading.Lock()

    def forget(self) -> None:
        """Instances were launched or terminated: ask EC2 again."""
        with self.lock:
            self.cache.clear()

    def _cached(self, key: tuple, fetch) -> set[str]:
        now = time.monotonic()
        with self.lock:
            hit = self.cache.get(key)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        value = fetch()
        with self.lock:
            self.cache[key] = (now, value)
        return value

    def by_target(self, key: str, values: list[str], account: str | None = None) -> set[str]:
        """Instance ids a Run Command target selects: ``tag:<key>`` (any of the values) or ``tag-key``.

        Read from EC2's tag index (DescribeTags), which answers in a blink for a thousand
        instances where moto's DescribeInstances takes seconds.
        """
        account = account or self.clients.default_account
        if key.startswith("tag:"):
            filters = [{"Name": "key", "Values": [key[4:]]}, {"Name": "value", "Values": values}]
        elif key == "tag-key":
            filters = [{"Name": "key", "Values": values}]
        else:
            raise ValueError(key)
        filters.append({"Name": "resource-type", "Values": ["instance"]})

        def fetch() -> set[str]:
            found: set[str] = set()
            for page in self.clients("ec2", account).get_paginator("describe_tags").paginate(Filters=filters):
                found |= {tag["ResourceId"] for tag in page["Tags"]}
            return found

        return self._cached((account, key, tuple(sorted(values))), fetch) & self.running(account)

    def running(self, account: str | None = None) -> set[str]:
        """Ids of the running instances of ``account`` (default: moto's default account)."""
        account = account or self.clients.default_account

        def fetch() -> set[str]:
            found: set[str] = set()
            for page in self.clients("ec2", account).get_paginator("describe_instance_status").paginate():
                found |= {s["InstanceId"] for s in page["InstanceStatuses"] if s["InstanceState"]["Name"] == "running"}
            return found

        return self._cached((account, "running"), fetch)

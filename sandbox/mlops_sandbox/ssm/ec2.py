"""What the SSM service asks moto's EC2: which running instances carry which tags."""

from __future__ import annotations

import boto3
from botocore.config import Config as BotoConfig


class Ec2:
    def __init__(self, endpoint_url: str, region: str) -> None:
        self.client = boto3.client(
            "ec2",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}),
        )

    def running(self, filters: list[dict] | None = None, instance_ids: list[str] | None = None) -> dict[str, dict]:
        """Running instances (id -> tags) matching EC2 ``filters``, as describe-instances answers."""
        found: dict[str, dict] = {}
        args: dict = {"Filters": [*(filters or []), {"Name": "instance-state-name", "Values": ["running"]}]}
        if instance_ids:
            args["InstanceIds"] = instance_ids
        for page in self.client.get_paginator("describe_instances").paginate(**args):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    found[instance["InstanceId"]] = tags
        return found

    def by_target(self, key: str, values: list[str]) -> set[str]:
        """Instance ids a Run Command target selects: ``tag:<key>`` or ``tag-key``."""
        if key.startswith("tag:"):
            return set(self.running([{"Name": key, "Values": values}]))
        if key == "tag-key":
            return set(self.running([{"Name": "tag-key", "Values": values}]))
        raise ValueError(key)

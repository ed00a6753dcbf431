"""boto3 clients for the moto server behind the SSM service (moto takes any credentials).

They sign with the sandbox's own key (``calls.INTERNAL_ACCESS_KEY``): what the service asks
moto for its own bookkeeping is not a client's call and stays out of the call log."""

from __future__ import annotations

import boto3
from botocore.config import Config as BotoConfig

from ..calls import INTERNAL_ACCESS_KEY


def client(service: str, endpoint_url: str, region: str):
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=INTERNAL_ACCESS_KEY,
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=16),
    )

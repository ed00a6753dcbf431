"""boto3 clients for the moto server behind the SSM service (moto takes any credentials).

They sign with the sandbox's own key (``calls.INTERNAL_ACCESS_KEY``): what the service asks
moto for its own bookkeeping is not a client's call and stays out of the call log. With
``account``, the calls act in that account of moto (its ``x-moto-account-id`` header):
the instances of the dev, staging and prod accounts are launched and looked up there."""

from __future__ import annotations

import threading

import boto3
from botocore.config import Config as BotoConfig

from ..calls import INTERNAL_ACCESS_KEY

ACCOUNT_HEADER = "x-moto-account-id"


def client(service: str, endpoint_url: str, region: str, account: str | None = None):
    made = boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=INTERNAL_ACCESS_KEY,
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=16),
    )
    if account:

        def in_account(request, **_kwargs) -> None:
            request.headers[ACCOUNT_HEADER] = account

        made.meta.events.register("before-sign", in_account)
    return made


class Clients:
    """One client per (service, account), made on first use."""

    def __init__(self, endpoint_url: str, region: str, default_account: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.default_account = default_account
        self._made: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, account: str | None = None):
        account = account or self.default_account
        key = (service, account)
        with self._lock:
            if key not in self._made:
                header = None if account == self.default_account else account
                self._made[key] = client(service, self.endpoint_url, self.region, header)
            return self._made[key]


def session_client(service: str, endpoint_url: str, region: str, credentials: dict):
    """A client signing with an STS session's credentials (an instance's role): moto acts
    in the role's account for it, whatever account the session was asked from."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=4),
    )

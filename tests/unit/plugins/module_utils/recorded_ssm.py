"""SSM answers captured from the API (moto 5 in server mode, checked against the AWS
documentation), replayed in order to the code under test.

``RecordedSSM`` is not a model of SSM: it returns, call after call, the responses or
errors a test lists, and records the calls, so a test states exactly which sequence of
answers it feeds the logic (for example the race where a lock is free on read and taken
on create).
"""

from __future__ import annotations

from datetime import datetime

import boto3
from dateutil.tz import tzlocal, tzutc

_CLIENT = boto3.session.Session(
    aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
).client("ssm")

_METADATA = {"RequestId": "V9be5EYA1mcg2jksBRwd0lwu3HXbW6oiNwM5pjGraZMc7cyWy88r", "HTTPStatusCode": 400}


def ssm_error(code: str, message: str, operation: str):
    """The modeled exception botocore raises for an SSM error code (a ClientError subclass),
    built from the parsed error response botocore hands it."""
    response = {
        "Error": {"Message": message, "Code": code},
        "ResponseMetadata": dict(_METADATA, HTTPHeaders={"x-amzn-errortype": code}),
        "message": message,
    }
    return getattr(_CLIENT.exceptions, code)(response, operation)


ALREADY_EXISTS = ssm_error(
    "ParameterAlreadyExists",
    "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
    "PutParameter",
)


def not_found(name: str, operation: str = "GetParameter"):
    return ssm_error("ParameterNotFound", "Parameter %s not found." % name, operation)


THROTTLED = ssm_error("ThrottlingException", "Rate exceeded", "GetParameter")


def parameter(name: str, value: str, version: int = 1, modified: datetime | None = None) -> dict:
    """A GetParameter ``Parameter`` as boto3 returns it."""
    return {
        "Name": name,
        "Type": "String",
        "Value": value,
        "Version": version,
        "LastModifiedDate": modified or datetime(2026, 11, 21, 10, 0, 0, tzinfo=tzlocal()),
        "ARN": "arn:aws:ssm:eu-west-1:123456789012:parameter%s" % name,
        "DataType": "text",
    }


def history_item(name: str, value: str, version: int, modified: datetime, user: str = "N/A") -> dict:
    """A GetParameterHistory ``Parameters`` item as boto3 returns it."""
    return {
        "Name": name,
        "Type": "String",
        "LastModifiedDate": modified.replace(tzinfo=tzutc()) if modified.tzinfo is None else modified,
        "LastModifiedUser": user,
        "Description": "mlops.deploy release record (its history is the release audit trail)",
        "Value": value,
        "Version": version,
        "Labels": [],
        "Tier": "Standard",
        "Policies": [],
        "DataType": "text",
    }


class RecordedSSM:
    """Replays ``answers[operation]`` in order (a response dict, or an exception to raise)."""

    def __init__(self, **answers):
        self.answers = {operation: list(items) for operation, items in answers.items()}
        self.calls: list[tuple[str, dict]] = []

    def _answer(self, operation: str, kwargs: dict):
        kwargs.pop("aws_retry", None)
        self.calls.append((operation, kwargs))
        queue = self.answers.get(operation)
        assert queue, "unexpected call %s(%s)" % (operation, kwargs)
        answer = queue.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def get_parameter(self, **kwargs):
        return self._answer("get_parameter", kwargs)

    def put_parameter(self, **kwargs):
        return self._answer("put_parameter", kwargs)

    def delete_parameter(self, **kwargs):
        return self._answer("delete_parameter", kwargs)

    def get_parameter_history(self, **kwargs):
        return self._answer("get_parameter_history", kwargs)

    def get_parameters_by_path(self, **kwargs):
        return self._answer("get_parameters_by_path", kwargs)

    def operations(self) -> list[str]:
        return [operation for operation, _kwargs in self.calls]

"""SSM answers captured from the API (moto 5 in server mode, checked against the AWS
documentation), replayed in order to the code under test.

``RecordedClient`` (``RecordedSSM`` for SSM) is not a model of the service: it returns,
call after call, the responses or errors a test lists, and records the calls, so a test
states exactly which sequence of answers it feeds the logic (for example the race where a
lock is free on read and taken on create).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import boto3
from botocore.loaders import Loader
from botocore.paginate import Paginator
from dateutil.tz import tzlocal, tzutc

_loader = Loader()


@cache
def _client(service: str):
    """A real botocore client (never called): its model, exceptions and method names."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    ).client(service)


_CLIENT = _client("ssm")

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


class Again:
    """An answer given again at every later call (a command still running, say)."""

    def __init__(self, answer):
        self.answer = answer


class RecordedClient:
    """Replays ``answers[operation]`` in order (a response dict, or an exception to raise)
    for any operation of ``service``, and records the calls. ``get_paginator`` gives
    botocore's own paginator (the service's pagination model) over the recorded answers,
    so the code under test pages exactly as it does against AWS."""

    def __init__(self, service: str, **answers):
        self.meta = _client(service).meta
        self.service = service
        self.answers = {operation: list(items) for operation, items in answers.items()}
        self.calls: list[tuple[str, dict]] = []

    def _answer(self, operation: str, kwargs: dict):
        kwargs.pop("aws_retry", None)
        self.calls.append((operation, kwargs))
        queue = self.answers.get(operation)
        assert queue, "unexpected call %s(%s)" % (operation, kwargs)
        answer = queue.pop(0)
        if isinstance(answer, Again):
            queue.insert(0, answer)
            answer = answer.answer
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def __getattr__(self, operation: str):
        if operation.startswith("_") or operation not in self.meta.method_to_api_mapping:
            raise AttributeError(operation)
        return lambda **kwargs: self._answer(operation, kwargs)

    def get_paginator(self, operation: str) -> Paginator:
        api_name = self.meta.method_to_api_mapping[operation]
        config = _loader.load_service_model(self.service, "paginators-1")["pagination"][api_name]
        model = self.meta.service_model.operation_model(api_name)
        return Paginator(getattr(self, operation), config, model)

    def operations(self) -> list[str]:
        return [operation for operation, _kwargs in self.calls]


class RecordedSSM(RecordedClient):
    """A ``RecordedClient`` of SSM."""

    def __init__(self, **answers):
        super().__init__("ssm", **answers)


# ------------------------------------------------------------------ Run Command

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
CMD = "0f5b7d3e-4a1c-4a55-9a3e-1d2f3c4b5a69"
I1, I2, I3, I4 = (
    "i-0aaaaaaaaaaaaaaa1",
    "i-0aaaaaaaaaaaaaaa2",
    "i-0aaaaaaaaaaaaaaa3",
    "i-0aaaaaaaaaaaaaaa4",
)

RECAP_OK = """PLAY [Deploy the model API] ****************************************************

TASK [mlops.deploy.compose_deploy] *********************************************
ok: [localhost]

PLAY RECAP *********************************************************************
localhost                  : ok=7    changed=0    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
"""
RECAP_CHANGED = RECAP_OK.replace("changed=0", "changed=2")


def invocation(instance_id, status, details=None, *, rc=None, output="", start=0.0, end=None, plugin="runShellScript"):
    """A ListCommandInvocations entry (Details=true) as SSM returns it."""
    plugins = []
    if rc is not None or output:
        plugins = [
            {
                "Name": "downloadContent",
                "Status": "Success",
                "StatusDetails": "Success",
                "ResponseCode": 0,
                "ResponseStartDateTime": T0 + timedelta(seconds=start),
                "ResponseFinishDateTime": T0 + timedelta(seconds=start + 0.4),
                "Output": "Content downloaded to /var/lib/amazon/ssm/i-x/document/orchestration/x/downloadContent",
                "StandardOutputUrl": "",
                "StandardErrorUrl": "",
                "OutputS3Region": "eu-west-1",
                "OutputS3BucketName": "",
                "OutputS3KeyPrefix": "",
            },
            {
                "Name": plugin,
                "Status": status if status in ("Success", "Failed", "TimedOut", "Cancelled") else "InProgress",
                "StatusDetails": details or status,
                "ResponseCode": rc if rc is not None else -1,
                "ResponseStartDateTime": T0 + timedelta(seconds=start + 0.5),
                "ResponseFinishDateTime": T0 + timedelta(seconds=end) if end is not None else None,
                "Output": output,
                "StandardOutputUrl": "",
                "StandardErrorUrl": "",
                "OutputS3Region": "eu-west-1",
                "OutputS3BucketName": "",
                "OutputS3KeyPrefix": "",
            },
        ]
        plugins = [{k: v for k, v in p.items() if v is not None} for p in plugins]
    return {
        "CommandId": CMD,
        "InstanceId": instance_id,
        "InstanceName": "",
        "Comment": "mlops.deploy.ssm_run_playbook",
        "DocumentName": "AWS-ApplyAnsiblePlaybooks",
        "DocumentVersion": "$DEFAULT",
        "RequestedDateTime": T0,
        "Status": status,
        "StatusDetails": details if details is not None else status,
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": plugins,
        "ServiceRole": "",
        "NotificationConfig": {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
    }


def command(command_id, status, target, completed, errors=0, delivery_timed_out=0, details=None):
    """A ListCommands entry."""
    return {
        "CommandId": command_id,
        "DocumentName": "AWS-ApplyAnsiblePlaybooks",
        "DocumentVersion": "$DEFAULT",
        "Comment": "",
        "ExpiresAfter": T0 + timedelta(hours=1),
        "Parameters": {},
        "InstanceIds": [],
        "Targets": [],
        "RequestedDateTime": T0,
        "Status": status,
        "StatusDetails": details or status,
        "OutputS3Region": "eu-west-1",
        "OutputS3BucketName": "",
        "OutputS3KeyPrefix": "",
        "MaxConcurrency": "50",
        "MaxErrors": "0",
        "TargetCount": target,
        "CompletedCount": completed,
        "ErrorCount": errors,
        "DeliveryTimedOutCount": delivery_timed_out,
        "ServiceRole": "",
        "NotificationConfig": {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        "TimeoutSeconds": 3600,
    }

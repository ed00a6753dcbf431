"""Errors as the SSM JSON protocol returns them (``__type`` + ``message``, HTTP 400)."""

from __future__ import annotations


class SsmError(Exception):
    """An API error; ``code`` is the shape name botocore turns into ``ClientError`` codes."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict:
        return {"__type": self.code, "message": self.message}


def throttled() -> SsmError:
    # What SSM answers when a caller exceeds its request rate; botocore retries it.
    return SsmError("ThrottlingException", "Rate exceeded")


def invalid_instance_ids(instance_ids: list[str], account_id: str) -> SsmError:
    listed = ", ".join(instance_ids)
    return SsmError("InvalidInstanceId", f"Instances [[{listed}]] not in a valid state for account {account_id}")

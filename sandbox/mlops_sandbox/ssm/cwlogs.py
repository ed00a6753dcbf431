"""Command output to CloudWatch Logs (moto), as the SSM agent streams it.

Streams are ``<command-id>/<instance-id>/<step>/stdout`` and ``.../stderr``; the group is
the one given in CloudWatchOutputConfig, or ``/aws/ssm/<document>`` by default. The group
and the streams are created when missing. Output arrives in pieces while a command runs;
each complete line becomes one event, a trailing partial line waits for the rest (or for
the end of the step); empty lines are left out, as CloudWatch takes no empty message.

As the real agent, it writes an instance's output to the instance's own account with the
instance profile role's credentials (``credentials_for(instance_id)``, set by the service;
an STS session of the role is in the role's account), so the call log shows these writes
as the instance's: DescribeLogGroups, CreateLogGroup only when the group is missing,
CreateLogStream, PutLogEvents. As the agent, it looks the group up once per command (not
once per service lifetime), so every run's calls are in the log whatever ran before it on
the same sandbox. Without role credentials (simulated instances, played by the service) it
writes with the service's own key, in the instance's account (``account_for(instance_id)``,
set by the service); streams of no instance go to moto's default account.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict

from botocore.exceptions import BotoCoreError, ClientError

from . import aws

log = logging.getLogger("mlops_sandbox.ssm.cwlogs")

MAX_EVENT_CHARS = 256 * 1024 - 26  # CloudWatch's event size limit (bytes, minus overhead)


def default_group(document: str) -> str:
    return f"/aws/ssm/{document}"


def _command(stream: str) -> str:
    """The command of a ``<command-id>/<instance-id>/...`` stream ("" for any other stream)."""
    head, sep, _rest = stream.partition("/")
    return head if sep else ""


class LogWriter:
    """Background writer: ``write()`` never blocks the caller on moto."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self.client = aws.client("logs", endpoint_url, region)
        self.endpoint_url, self.region = endpoint_url, region
        self.credentials_for = None  # instance id -> STS credentials or None (set by the service)
        self.account_for = None  # instance id -> its account (None: the default one); set by the service
        self.instance_clients: dict[str, tuple[str, object]] = {}
        self.account_clients: dict[str, object] = {}
        self.queue: queue.Queue[tuple[str, str, str, bool] | None] = queue.Queue()
        self.partial: dict[tuple[str, str], str] = defaultdict(str)
        self.known_groups: set[tuple[str, str, str]] = set()  # (account, group, command id)
        self.known_streams: set[tuple[str, str, str]] = set()  # (account, group, stream)
        self.pending = 0
        self.idle = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="cloudwatch-writer", daemon=True)
        self.thread.start()

    def write(self, group: str, stream: str, text: str, final: bool = False) -> None:
        if not text and not final:
            return
        with self.idle:
            self.pending += 1
        self.queue.put((group, stream, text, final))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything written so far is in CloudWatch."""
        deadline = time.monotonic() + timeout
        with self.idle:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.idle.wait(left)
        return True

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            batch = [item]
            # Gather what else is queued, so a busy command costs few calls.
            time.sleep(0.2)
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            events: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for entry in batch:
                if entry is None:
                    continue
                group, stream, text, final = entry
                key = (group, stream)
                now_ms = int(time.time() * 1000)
                data = self.partial.pop(key, "") + text
                lines = data.split("\n")
                rest = lines.pop()  # "" when the text ended with a newline
                if final and rest:
                    lines.append(rest)
                    rest = ""
                if rest:
                    self.partial[key] = rest
                for line in lines:
                    if not line:
                        continue  # CloudWatch refuses empty messages
                    for start in range(0, len(line), MAX_EVENT_CHARS):
                        events[key].append({"timestamp": now_ms, "message": line[start : start + MAX_EVENT_CHARS]})
            for (group, stream), items in events.items():
                self._put(group, stream, items)
            with self.idle:
                self.pending -= len(batch)
                self.idle.notify_all()

    def _client_for(self, stream: str):
        """(client, account, as the instance) for a stream: ``<command>/<instance>/...`` with the
        instance's role session, else the service's key in the instance's account."""
        parts = stream.split("/")
        if len(parts) < 2 or not parts[1].startswith(("i-", "mi-")):
            return self.client, "", False
        iid = parts[1]
        account = (self.account_for(iid) if self.account_for is not None else None) or ""
        creds = None
        if self.credentials_for is not None:
            try:
                creds = self.credentials_for(iid)
            except Exception as exc:  # noqa: BLE001 - output still goes out, as the service
                log.warning("no role credentials for %s (%s): writing its output as the service", iid, exc)
        if creds is not None:
            held = self.instance_clients.get(iid)
            if held is None or held[0] != creds["AccessKeyId"]:
                held = (creds["AccessKeyId"], aws.session_client("logs", self.endpoint_url, self.region, creds))
                self.instance_clients[iid] = held
            return held[1], account, True
        if not account:
            return self.client, "", False
        if account not in self.account_clients:
            self.account_clients[account] = aws.client("logs", self.endpoint_url, self.region, account)
        return self.account_clients[account], account, False

    def _put(self, group: str, stream: str, events: list[dict]) -> None:
        client, account, as_instance = self._client_for(stream)
        for attempt in (1, 2):
            try:
                self._ensure(client, account, group, stream, as_instance)
                for start in range(0, len(events), 5000):
                    client.put_log_events(
                        logGroupName=group, logStreamName=stream, logEvents=events[start : start + 5000]
                    )
                return
            except (BotoCoreError, ClientError) as exc:
                # A group deleted by a test under our feet: forget what we knew and retry once.
                self.known_groups.discard((account, group, _command(stream)))
                self.known_streams.discard((account, group, stream))
                if attempt == 2:
                    log.warning("CloudWatch write to %s %s failed: %s", group, stream, exc)

    def _ensure(self, client, account: str, group: str, stream: str, as_instance: bool) -> None:
        if (account, group, _command(stream)) not in self.known_groups:
            found = as_instance and any(
                g["logGroupName"] == group
                for g in client.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
            )
            if not found:
                with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                    client.create_log_group(logGroupName=group)
            self.known_groups.add((account, group, _command(stream)))
        if (account, group, stream) not in self.known_streams:
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                client.create_log_stream(logGroupName=group, logStreamName=stream)
            self.known_streams.add((account, group, stream))

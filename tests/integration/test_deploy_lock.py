"""deploy_lock against moto's SSM Parameter Store, through real ansible-playbook runs.

The race and wait tests send the module's calls through ``SsmWatch``, a forwarding
proxy in front of moto: it changes nothing in the calls or answers, it counts them,
and it can hold back the PutParameter calls of two runs until both have arrived, so
that they reach SSM at the same instant - the race the lock exists for, every time.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from .conftest import Playbook, assert_play_ok

HOP_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


class SsmWatch:
    """A forwarding proxy for the AWS JSON protocol that records (operation, Name, status)."""

    def __init__(self, upstream: str):
        target = urlparse(upstream)
        self.upstream = (target.hostname, target.port)
        self.calls: list[tuple[str, str | None, int]] = []
        self.cond = threading.Condition()
        self.held: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        watch = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                try:
                    name = json.loads(body or b"{}").get("Name")
                except ValueError:
                    name = None
                watch._gate(operation)
                status, headers, answer = watch._forward(self.path, self.headers, body)
                with watch.cond:
                    watch.calls.append((operation, name, status))
                    watch.cond.notify_all()
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _forward(self, path, headers, body):
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
            connection.request("POST", path, body=body, headers=forwarded)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _gate(self, operation):
        """Hold a call of a held operation until ``held[operation]`` of them wait."""
        with self.cond:
            if operation not in self.held:
                return
            self.waiting[operation] = self.waiting.get(operation, 0) + 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.waiting[operation] >= self.held[operation], timeout=60)

    def hold(self, operation: str, count: int):
        with self.cond:
            self.held[operation] = count
            self.waiting[operation] = 0

    def wait_until(self, predicate, timeout: float, what: str):
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(list(self.calls)), timeout=timeout):
                pytest.fail("timed out after %ss waiting until %s; calls seen: %s" % (timeout, what, self.calls))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def watch(aws_env):
    # SSM calls go to AWS_ENDPOINT_URL_SSM when the sandbox sets it (its SSM service passes
    # Parameter Store calls on to moto), else to AWS_ENDPOINT_URL.
    proxy = SsmWatch(aws_env.get("AWS_ENDPOINT_URL_SSM") or aws_env["AWS_ENDPOINT_URL"])
    yield proxy
    proxy.close()


def unique(prefix: str) -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def lock_value(owner, run_id, release, acquired, ttl):
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return json.dumps(
        {
            "owner": owner,
            "run_id": run_id,
            "release": release,
            "acquired_at": acquired.strftime(stamp),
            "expires_at": (acquired + timedelta(seconds=ttl)).strftime(stamp),
        }
    )


def test_lifecycle_quartets_held_stale_and_forced(playbook, aws):
    ssm = aws("ssm")
    lock_env, stale_env, foreign_env = unique("lock"), unique("stale"), unique("foreign")
    # A run that died three hours ago left its lock (one-hour ttl) behind.
    ssm.put_parameter(
        Name=f"/mlops/{stale_env}/deploy-lock",
        Type="String",
        Value=lock_value("carol@ci-9", "run-dead", "r-99", datetime.now(UTC) - timedelta(hours=3), 3600),
    )
    ssm.put_parameter(Name=f"/mlops/{foreign_env}/deploy-lock", Type="String", Value="held by hand for maintenance")
    result = playbook.run(
        "deploy_lock/lifecycle.yml", {"lock_env": lock_env, "stale_env": stale_env, "foreign_env": foreign_env}
    )
    assert_play_ok(result)


def test_bad_inputs_fail_clearly(playbook):
    assert_play_ok(playbook.run("deploy_lock/bad_input.yml", {"lock_env": unique("bad")}))


def take(playbook_via, tmp_path, lock_env, run_id, owner, wait=0):
    result_file = tmp_path / f"{run_id}.json"
    process = playbook_via.start(
        "deploy_lock/take.yml",
        {
            "lock_env": lock_env,
            "run_id": run_id,
            "owner": owner,
            "release": f"rel-{run_id}",
            "wait": str(wait),
            "result_file": str(result_file),
        },
    )
    return process, result_file


def test_two_runs_started_together_exactly_one_gets_the_lock(aws_env, aws, watch, tmp_path):
    lock_env = unique("race")
    name = f"/mlops/{lock_env}/deploy-lock"
    via_watch = Playbook({**aws_env, "AWS_ENDPOINT_URL_SSM": watch.url})
    # Both creates reach SSM together, only once both runs have seen the lock free.
    watch.hold("PutParameter", 2)
    runs = {
        "run-1": take(via_watch, tmp_path, lock_env, "run-1", "ci-one@runner-1"),
        "run-2": take(via_watch, tmp_path, lock_env, "run-2", "ci-two@runner-2"),
    }
    outputs = {}
    for run_id, (process, _file) in runs.items():
        outputs[run_id] = process.communicate(timeout=180)[0]
    codes = {run_id: process.returncode for run_id, (process, _file) in runs.items()}
    assert sorted(codes.values()) == [0, 2], outputs
    winner = next(run_id for run_id, code in codes.items() if code == 0)
    loser = "run-2" if winner == "run-1" else "run-1"
    owner = {"run-1": "ci-one@runner-1", "run-2": "ci-two@runner-2"}[winner]

    # Both saw the lock free and both tried to create it; SSM let one through.
    lock_calls = [(op, status) for op, call_name, status in watch.calls if call_name == name]
    assert [op for op, _status in lock_calls[:2]] == ["GetParameter", "GetParameter"], lock_calls
    assert sorted(status for op, status in lock_calls if op == "PutParameter") == [200, 400], lock_calls
    # The loser names the winner.
    assert f"deploy lock {name} is held by {owner} (run {winner}, release rel-{winner})" in outputs[loser]
    assert "Traceback" not in outputs[loser]
    held = json.loads(aws("ssm").get_parameter(Name=name)["Parameter"]["Value"])
    assert held["run_id"] == winner
    result = json.loads(runs[winner][1].read_text())
    assert result["changed"] is True
    assert result["lock"]["owner"] == owner
    assert not runs[loser][1].exists()


def test_a_second_run_waits_for_the_first_to_release(aws_env, aws, watch, tmp_path):
    ssm = aws("ssm")
    lock_env = unique("wait")
    name = f"/mlops/{lock_env}/deploy-lock"
    ssm.put_parameter(
        Name=name, Type="String", Value=lock_value("first@ci", "run-first", "r-1", datetime.now(UTC), 600)
    )
    via_watch = Playbook({**aws_env, "AWS_ENDPOINT_URL_SSM": watch.url})
    process, result_file = take(via_watch, tmp_path, lock_env, "run-second", "second@ci", wait=120)

    def reads_of_held_lock(calls):
        return sum(1 for op, call_name, status in calls if op == "GetParameter" and call_name == name and status == 200)

    # The second run has found the lock held and read it again: it is waiting.
    watch.wait_until(lambda calls: reads_of_held_lock(calls) >= 2, 90, "the second run polls the held lock")
    ssm.delete_parameter(Name=name)  # the first run finishes
    output = process.communicate(timeout=180)[0]
    assert process.returncode == 0, output
    assert "failed=0" in output
    result = json.loads(result_file.read_text())
    assert result["changed"] is True
    assert result["acquired"] is True
    assert result["waited"] > 0
    assert result["lock"]["run_id"] == "run-second"
    assert json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])["owner"] == "second@ci"

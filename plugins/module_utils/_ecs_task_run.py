# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What ecs_run_task does, given boto3 clients: check, run, follow the status and the log.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

Two callers run a ``TaskRun`` with the same validated parameters: the action plugin
``ecs_run_task`` (on the controller, in-process, so that it prints the task's status
changes and its log lines as they come) and the module itself (``AnsibleAWSModule``
clients, nothing printed) when it runs without the action plugin.

Every AWS call is one small method of ``EcsApi`` (retried on throttling with jittered
backoff by amazon.aws's client wrapper) and is counted in ``calls``; what they return goes
through the plain functions of ``_ecs_task``.
"""

from __future__ import annotations

import collections
import copy
import time

from ansible_collections.mlops.deploy.plugins.module_utils import _ecs_task as rules

# After STOPPED, the log is read until it brings nothing, then once more this much later
# (the awslogs driver's last lines may land after the task stopped).
LOG_SETTLE = 1.0
# How long a task stopped at the timeout may take to reach STOPPED, beyond its containers'
# stopTimeout.
STOP_GRACE = 30.0
TAIL_IN_MESSAGE = 5


def argument_spec():
    """The module's own options (AWS connection options come from amazon.aws)."""
    return {
        "cluster": {"type": "str", "default": "default"},
        "task_definition": {"type": "str"},
        "task_arn": {"type": "str"},
        **copy.deepcopy(rules.PLACEMENT_SPEC),
        "container_overrides": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "name": {"type": "str", "required": True},
                "command": {"type": "list", "elements": "str"},
                "environment": {"type": "raw"},
                "cpu": {"type": "int"},
                "memory": {"type": "int"},
                "memory_reservation": {"type": "int"},
            },
        },
        "tags": {"type": "dict", "default": {}},
        "propagate_tags": {"type": "str", "choices": ["TASK_DEFINITION", "SERVICE", "NONE"]},
        "started_by": {"type": "str"},
        "group": {"type": "str"},
        "wait": {"type": "bool", "default": True},
        "timeout": {"type": "int", "default": 3600},
        "follow_container": {"type": "str"},
        "follow_logs": {"type": "bool", "default": True},
        "tail_lines": {"type": "int", "default": 20},
        "poll_max_interval": {"type": "float", "default": 10.0},
    }


SPEC_RULES = {
    "mutually_exclusive": [["launch_type", "capacity_provider_strategy"], ["task_definition", "task_arn"]],
    "required_one_of": [["task_definition", "task_arn"]],
}
# Options that shape a new task: meaningless when following one started elsewhere.
RUN_OPTIONS = (
    "launch_type",
    "capacity_provider_strategy",
    "platform_version",
    "network_configuration",
    "container_overrides",
    "tags",
    "propagate_tags",
    "started_by",
    "group",
)


def retry_decorator():
    from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

    return AWSRetry.jittered_backoff(retries=10, delay=1, max_delay=20, catch_extra_error_codes=["ThrottlingException"])


def error_code(exc):
    response = getattr(exc, "response", None)
    return (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None


# ----------------------------------------------------------------------- AWS calls


class EcsApi:
    """Each AWS call ecs_run_task makes, counted by operation. ``logs`` is a function of the
    region (a container may log to another region than the task's)."""

    def __init__(self, ecs, logs, region=None):
        self.ecs = ecs
        self._logs_factory = logs
        self._logs = {}
        self.region = region
        self.calls = collections.Counter()

    def _count(self, operation):
        self.calls[operation] += 1

    def logs(self, region=None):
        key = region or self.region
        if key not in self._logs:
            self._logs[key] = self._logs_factory(region)
        return self._logs[key]

    def describe_cluster(self, cluster):
        self._count("DescribeClusters")
        answer = self.ecs.describe_clusters(aws_retry=True, clusters=[cluster])
        found = [c for c in answer.get("clusters", []) if c.get("status") == "ACTIVE"]
        if not found:
            failure = (answer.get("failures") or [{}])[0].get("reason")
            state = (answer.get("clusters") or [{}])[0].get("status") if answer.get("clusters") else failure
            raise rules.TaskError(
                "cluster %r does not exist in %s (%s); create it (community.aws.ecs_cluster) or give another cluster"
                % (cluster, self.region, state or "MISSING")
            )
        return found[0]

    def describe_task_definition(self, reference):
        self._count("DescribeTaskDefinition")
        try:
            return self.ecs.describe_task_definition(aws_retry=True, taskDefinition=reference)["taskDefinition"]
        except Exception as exc:
            if error_code(exc) in ("ClientException", "InvalidParameterException"):
                raise rules.TaskError(
                    "task definition %r not found in %s: register it first (community.aws.ecs_taskdefinition) "
                    "or give family, family:revision or its ARN" % (reference, self.region)
                ) from None
            raise

    def run_task(self, request):
        self._count("RunTask")
        answer = self.ecs.run_task(aws_retry=True, **request)
        tasks = answer.get("tasks") or []
        if not tasks:
            failures = answer.get("failures") or []
            reason = "; ".join("%s %s" % (f.get("arn", ""), f.get("reason", "")) for f in failures) or "no task"
            raise rules.TaskError("RunTask started nothing: %s" % reason.strip())
        return tasks[0]

    def describe_task(self, cluster, task_arn):
        self._count("DescribeTasks")
        tasks = self.ecs.describe_tasks(aws_retry=True, cluster=cluster, tasks=[task_arn]).get("tasks") or []
        return tasks[0] if tasks else None

    def stop_task(self, cluster, task_arn, reason):
        self._count("StopTask")
        return self.ecs.stop_task(aws_retry=True, cluster=cluster, task=task_arn, reason=reason[:255])

    def log_events(self, region, group, stream, token):
        """One GetLogEvents page after ``token`` (oldest first): (events, next token); no
        events while the stream does not exist yet."""
        self._count("GetLogEvents")
        params = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            params["nextToken"] = token
        try:
            answer = self.logs(region).get_log_events(aws_retry=True, **params)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return [], token
            raise
        return answer.get("events") or [], answer.get("nextForwardToken") or token


# ---------------------------------------------------------------------- the run


class TaskRun:
    def __init__(self, api, params, check_mode=False, report=None, clock=time.monotonic, sleep=time.sleep):
        self.api = api
        self.params = params
        self.check_mode = check_mode
        self.report = report or (lambda line: None)
        self.clock = clock
        self.sleep = sleep
        self.task_definition = None
        self.request = None
        self.folded = None
        self.followed = None
        self.settings = None
        self.stream = None
        self.token = None
        self.tail = collections.deque(maxlen=max(params.get("tail_lines") or 0, TAIL_IN_MESSAGE))
        self.lines_seen = 0
        self.statuses = []
        self.started = None
        self.started_here = False
        self.running_seen = False
        self._existing = None

    # -- results ---------------------------------------------------------------------------

    def partial(self):
        """What is known so far (for a failure before the end)."""
        result = dict(self.folded or {})
        result.update(
            changed=self.started_here or (self.check_mode and not self.params.get("task_arn")),
            check_mode=self.check_mode,
            run_task_request=self.request,
            followed_container=self.followed,
            log_group=(self.settings or {}).get("group"),
            log_stream=self.stream,
            log_lines=self._tail_lines(),
            log_lines_total=self.lines_seen,
            statuses=self.statuses,
            api_calls=dict(self.api.calls),
        )
        return result

    def _tail_lines(self):
        wanted = self.params.get("tail_lines") or 0
        return list(self.tail)[-wanted:] if wanted else []

    def _name(self):
        return self.folded["task_id"][:8] if self.folded else "?"

    def _say(self, text):
        self.report("ecs task %s: %s" % (self._name(), text))

    # -- the steps ---------------------------------------------------------------------------

    def prepare(self):
        """Everything RunTask needs, checked: the options, the cluster, the task definition, the
        overrides. With ``task_arn``: the task (started elsewhere) and its task definition."""
        params = self.params
        rules.check_options(params)
        self.api.describe_cluster(params.get("cluster") or "default")
        if params.get("task_arn"):
            return self._prepare_existing()
        self.task_definition = self.api.describe_task_definition(params["task_definition"])
        self._choose_followed()
        self.request = rules.run_task_request(params, self.task_definition)
        return self.request

    def _prepare_existing(self):
        params = self.params
        given = [option for option in RUN_OPTIONS if params.get(option)]
        if given:
            raise rules.TaskError(
                "task_arn follows a task started elsewhere; %s shape a new task and cannot go with it"
                % ", ".join(given)
            )
        cluster = params.get("cluster") or "default"
        task = self.api.describe_task(cluster, params["task_arn"])
        if task is None:
            raise rules.TaskError("no task %s on cluster %s (DescribeTasks found none)" % (params["task_arn"], cluster))
        self.task_definition = self.api.describe_task_definition(task["taskDefinitionArn"])
        self._choose_followed()
        self._existing = task
        return

    def _choose_followed(self):
        self.followed = rules.followed_container(self.task_definition, self.params.get("follow_container"))
        definition = next(
            (d for d in self.task_definition.get("containerDefinitions") or [] if d.get("name") == self.followed), {}
        )
        self.settings = rules.log_settings(definition)

    def run(self):
        """(result, failure message or None)."""
        self.prepare()
        if self.params.get("task_arn"):
            return self._run_existing()
        family = "%s:%s" % (self.task_definition.get("family"), self.task_definition.get("revision"))
        cluster = rules.cluster_name(self.request["cluster"])
        if self.check_mode:
            result = self.partial()
            result.update(
                changed=True, msg="would run %s on cluster %s (check mode: nothing started)" % (family, cluster)
            )
            return result, None
        self.started = self.clock()
        task = self.api.run_task(self.request)
        self.started_here = True
        self._update(task, announce="started %s on cluster %s" % (family, cluster))
        self.stream = rules.stream_name(self.settings, self.followed, self.folded["task_arn"])
        if not self.params.get("wait", True):
            result = self.partial()
            result.update(msg="started task %s (%s); not waiting" % (self.folded["task_id"], family))
            return result, None
        return self._outcome(self._follow(self.request["cluster"], stop_at_timeout=True))

    def _run_existing(self):
        task = self._existing
        family = "%s:%s" % (self.task_definition.get("family"), self.task_definition.get("revision"))
        self.started = self.clock()
        self._update(task, announce="following %s, started by %s" % (family, task.get("startedBy") or "?"))
        self.stream = rules.stream_name(self.settings, self.followed, self.folded["task_arn"])
        cluster = self.params.get("cluster") or "default"
        if self.check_mode or not self.params.get("wait", True):
            result = self.partial()
            result.update(msg="task %s (%s) is %s" % (self.folded["task_id"], family, self.folded["last_status"]))
            return result, None
        self.running_seen = rules.status_rank(self.folded["last_status"]) >= rules.status_rank("RUNNING")
        return self._outcome(self._follow(cluster, stop_at_timeout=False))

    def _outcome(self, timed_out):
        result = self.partial()
        result["timed_out"] = timed_out
        result["exit_code"] = next(
            (c.get("exit_code") for c in self.folded["containers"] if c["name"] == self.followed), None
        )
        failed, message = rules.verdict(
            self.folded, self.followed, timed_out, self.params.get("timeout"), stopped=self.started_here
        )
        result["msg"] = message
        if failed:
            last = list(self.tail)[-TAIL_IN_MESSAGE:]
            if last:
                message += "\nlast lines of %s:\n  %s" % (self.followed, "\n  ".join(last))
            return result, message
        return result, None

    def _update(self, task, announce=None):
        before = self.folded
        self.folded = rules.fold(task, self.task_definition)
        if before is None or before["last_status"] != self.folded["last_status"]:
            self.statuses.append(
                {"status": self.folded["last_status"], "after": round(self.clock() - (self.started or self.clock()), 1)}
            )
        if announce:
            self._say("%s (%s)" % (announce, self.folded["last_status"]))
            return True
        lines = rules.changes(before, self.folded)
        elapsed = self.clock() - self.started
        for line in lines:
            self._say("%s (+%.1fs)" % (line, elapsed))
        return bool(lines)

    def _read_logs(self):
        """Every log line that arrived since the last read; True when there were some."""
        if not (self.params.get("follow_logs", True) and self.settings and self.settings.get("group")):
            return False
        if self.stream is None:
            container = next((c for c in self.folded["containers"] if c["name"] == self.followed), {})
            self.stream = container.get("log_stream")
            if self.stream is None:
                return False
        got = False
        while True:
            events, token = self.api.log_events(
                self.settings.get("region"), self.settings["group"], self.stream, self.token
            )
            self.token = token
            for event in events:
                message = event.get("message", "")
                self.tail.append(message)
                self.lines_seen += 1
                self.report("[%s] %s" % (self.followed, message))
            got = got or bool(events)
            if not events or len(events) < 10000:
                return got

    def _follow(self, cluster, stop_at_timeout):
        """Follow the task to STOPPED; True when the timeout passed first (the task is then
        stopped when it was started here; one started elsewhere is left running)."""
        params = self.params
        pacing = rules.Pacing(describe_max=max(params.get("poll_max_interval") or 10.0, 1.0))
        arn = self.folded["task_arn"]
        deadline = self.started + params.get("timeout", 3600)
        stop_deadline = None
        now = self.clock()
        running_seen = self.running_seen
        next_describe, next_logs = now + 1.0, now if running_seen else now + 1.0
        if rules.is_done({"lastStatus": self.folded["last_status"]}):
            self._drain()
            return False
        while True:
            now = self.clock()
            if stop_deadline is None and now >= deadline and not stop_at_timeout:
                return True
            if stop_deadline is None and now >= deadline:
                self._say("timeout of %ss reached: stopping it (StopTask)" % params.get("timeout"))
                self.api.stop_task(
                    cluster, arn, "mlops.deploy.ecs_run_task: timeout of %ss reached" % params.get("timeout")
                )
                stop_deadline = now + self._stop_timeout() + STOP_GRACE
                next_describe = now
            if stop_deadline is not None and now >= stop_deadline:
                return True
            if running_seen and now >= next_logs:
                got = self._read_logs()
                next_logs = now + pacing.after_logs(got)
                if not got and pacing.log_went_quiet():
                    next_describe = min(next_describe, now)
            if now >= next_describe:
                task = self.api.describe_task(cluster, arn)
                if task is None:
                    raise rules.TaskError(
                        "task %s is gone from cluster %s (DescribeTasks found nothing)" % (arn, cluster)
                    )
                if running_seen and rules.status_rank(task.get("lastStatus")) > rules.status_rank("RUNNING"):
                    self._read_logs()  # its last lines before the news that it stopped
                changed = self._update(task)
                status = self.folded["last_status"]
                if not running_seen and rules.status_rank(status) >= rules.status_rank("RUNNING"):
                    running_seen = True
                    next_logs = now
                if rules.is_done(task):
                    self._drain()
                    return stop_deadline is not None
                next_describe = now + pacing.after_describe(changed, status)
            wake = min(next_describe, next_logs if running_seen else next_describe, stop_deadline or deadline)
            self.sleep(max(0.0, wake - self.clock()))

    def _drain(self):
        """The last lines, once the task stopped (none to read if no container ever ran)."""
        if any(c.get("runtime_id") for c in self.folded["containers"]):
            self._read_logs()
            self.sleep(LOG_SETTLE)
            self._read_logs()

    def _stop_timeout(self):
        values = [d.get("stopTimeout") for d in self.task_definition.get("containerDefinitions") or []]
        return max([v for v in values if v is not None] or [30])

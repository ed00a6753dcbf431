# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What ssm_run_playbook does, given boto3 clients: resolve, pre-flight, send, follow.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

Two callers run a ``Rollout`` with the same validated parameters:
- the action plugin ``ssm_run_playbook`` (controller side, in-process, so that it
  can print one line per state change while it waits), with clients made by
  amazon.aws's ``AWSPluginBase`` from the same options and environment variables an
  AWS module reads;
- the module ``ssm_run_playbook`` itself (``AnsibleAWSModule`` clients), when it is
  run without its action plugin.

Every AWS call is one small method of ``SsmApi`` (retried on throttling with
jittered backoff); everything it returns goes through the plain functions of
``_ssm_run``.
"""

from __future__ import annotations

import time
from datetime import UTC

from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as rules
from ansible_collections.mlops.deploy.plugins.module_utils._cloudwatch_logs import LogReader, LogsError, ssm_step_name

# How long a cancelled command is followed for its invocations to land on Cancelled.
CANCEL_GRACE = 30.0
# CloudWatch tails are fetched for at most this many failed instances (the rest come
# from the invocation output), so that a fleet-wide failure stays a few calls.
CLOUDWATCH_TAILS_MAX = 10
# CloudWatch output lags behind the invocation's status: read again for up to this long.
CLOUDWATCH_SETTLE = 15.0
# Seconds after sending during which missing invocations are expected (SSM creates them).
MISSING_GRACE = 5.0
# Errors worth a retry besides the ones AWSRetry knows (SSM says ThrottlingException).
RETRY_EXTRA_CODES = ["ThrottlingException"]


def error_code(exc):
    """The AWS error code of a botocore ClientError (None for anything else)."""
    response = getattr(exc, "response", None)
    return (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None


def retry_decorator():
    """The retry policy of every call: jittered backoff, throttling included."""
    from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

    return AWSRetry.jittered_backoff(retries=10, delay=1, max_delay=20, catch_extra_error_codes=RETRY_EXTRA_CODES)


def argument_spec():
    """The module's own options (AWS connection options come from amazon.aws)."""
    return {
        "instance_ids": {"type": "list", "elements": "str"},
        "targets": {"type": "list", "elements": "str"},
        "inventory_hosts": {"type": "list", "elements": "raw"},
        "document_name": {"type": "str", "default": rules.DEFAULT_DOCUMENT},
        "document_version": {"type": "str"},
        "playbook_url": {"type": "str"},
        "playbook_file": {"type": "str"},
        "extra_vars": {"type": "dict", "default": {}},
        "install_dependencies": {"type": "bool", "default": False},
        "verbose": {"type": "int", "default": 1, "choices": [1, 2, 3, 4]},
        "execution_timeout": {"type": "int"},
        "parameters": {"type": "dict"},
        "comment": {"type": "str"},
        "max_concurrency": {"type": "str", "default": "50"},
        "max_errors": {"type": "str", "default": "0"},
        "batches": {"type": "list", "elements": "raw", "default": []},
        "delivery_timeout": {"type": "int"},
        "cloudwatch_log_group": {"type": "str"},
        "timeout": {"type": "int", "default": 3600},
        "poll_max_interval": {"type": "float", "default": 5.0},
        "skip_offline": {"type": "bool", "default": False},
        "tail_lines": {"type": "int", "default": 20},
        "output_filter": {"type": "str"},
    }


SPEC_RULES = {
    "mutually_exclusive": [["instance_ids", "targets", "inventory_hosts"]],
    "required_one_of": [["instance_ids", "targets", "inventory_hosts"]],
}


# ----------------------------------------------------------------------- AWS calls


class SsmApi:
    """Each AWS call ssm_run_playbook makes. Clients come wrapped by amazon.aws's
    RetryingBotoClientWrapper (``aws_retry=True`` retries throttled calls)."""

    def __init__(self, ssm, ec2=None, logs=None, region=None):
        """``ec2`` and ``logs`` may be clients or functions that make one: they are made
        only when needed (tag targets; CloudWatch output)."""
        self.ssm = ssm
        self._clients = {"ec2": ec2, "logs": logs}
        self.region = region

    def _client(self, name):
        client = self._clients[name]
        if callable(client):
            client = self._clients[name] = client()
        return client

    @property
    def ec2(self):
        return self._client("ec2")

    @property
    def logs(self):
        return self._client("logs")

    def describe_instances(self, filters):
        reservations, params = [], {"Filters": filters, "MaxResults": 1000}
        while True:
            response = self.ec2.describe_instances(aws_retry=True, **params)
            reservations.extend(response.get("Reservations", []))
            if not response.get("NextToken"):
                return reservations
            params["NextToken"] = response["NextToken"]

    def instance_information(self, instance_ids):
        found = []
        for chunk in rules.chunks(list(instance_ids), rules.DESCRIBE_INFO_FILTER_VALUES_MAX):
            params = {
                "Filters": [{"Key": "InstanceIds", "Values": chunk}],
                "MaxResults": rules.DESCRIBE_INFO_PAGE_MAX,
            }
            while True:
                response = self.ssm.describe_instance_information(aws_retry=True, **params)
                found.extend(response.get("InstanceInformationList", []))
                if not response.get("NextToken"):
                    break
                params["NextToken"] = response["NextToken"]
        return found

    def send_command(self, **params):
        return self.ssm.send_command(aws_retry=True, **params)["Command"]

    def list_commands(self, command_ids, invoked_after=None):
        """The commands, by ID: one call for one command; for several, the commands
        sent since ``invoked_after`` (50 a page) and any still missing by ID."""
        if len(command_ids) == 1 or invoked_after is None:
            found = []
            for command_id in command_ids:
                found.extend(self.ssm.list_commands(aws_retry=True, CommandId=command_id).get("Commands", []))
            return found
        wanted, found = set(command_ids), {}
        params = {
            "Filters": [{"key": "InvokedAfter", "value": invoked_after}],
            "MaxResults": rules.LIST_PAGE_MAX,
        }
        while True:
            response = self.ssm.list_commands(aws_retry=True, **params)
            for command in response.get("Commands", []):
                if command["CommandId"] in wanted:
                    found[command["CommandId"]] = command
            if len(found) == len(wanted) or not response.get("NextToken"):
                break
            params["NextToken"] = response["NextToken"]
        missing = [cid for cid in command_ids if cid not in found]
        return list(found.values()) + (self.list_commands(missing) if missing else [])

    def list_invocations(self, command_id, details=False):
        invocations = []
        params = {"CommandId": command_id, "MaxResults": rules.LIST_PAGE_MAX, "Details": details}
        while True:
            response = self.ssm.list_command_invocations(aws_retry=True, **params)
            invocations.extend(response.get("CommandInvocations", []))
            if not response.get("NextToken"):
                return invocations
            params["NextToken"] = response["NextToken"]

    def cancel_command(self, command_id):
        self.ssm.cancel_command(aws_retry=True, CommandId=command_id)


# ------------------------------------------------------------------------ planning


def document_parameters(params, region, check_mode):
    """The document and its Parameters from the options; checks every rule first."""
    document = params["document_name"]
    if not rules.DOCUMENT_NAME.match(document or ""):
        raise rules.SsmRunError("document_name %r is not a valid SSM document name or ARN" % (document,))
    ansible = document == rules.DEFAULT_DOCUMENT
    ansible_only = [
        k for k in ("playbook_url", "playbook_file", "execution_timeout") if params.get(k) not in (None, "")
    ] + [k for k in ("extra_vars",) if params.get(k)]
    if ansible:
        if params.get("parameters"):
            raise rules.SsmRunError(
                "parameters is for other documents; with %s use playbook_url, playbook_file, extra_vars, "
                "install_dependencies, verbose and execution_timeout" % rules.DEFAULT_DOCUMENT
            )
        if not params.get("playbook_url"):
            raise rules.SsmRunError(
                "playbook_url is required with %s: the s3:// (or https://) URL of a playbook .yml or a .zip "
                "bundle" % rules.DEFAULT_DOCUMENT
            )
        timeout = params.get("execution_timeout")
        if timeout is not None and timeout < 1:
            raise rules.SsmRunError("execution_timeout must be a number of seconds, 1 or more")
        return document, rules.ansible_parameters(
            params["playbook_url"],
            region,
            params.get("playbook_file"),
            params.get("extra_vars"),
            params.get("install_dependencies"),
            params.get("verbose") or 1,
            timeout,
            check=check_mode,
        )
    if ansible_only:
        raise rules.SsmRunError(
            "%s: for %s only; pass %s's own parameters in parameters"
            % (", ".join(ansible_only), rules.DEFAULT_DOCUMENT, document)
        )
    return document, rules.raw_parameters(params.get("parameters"))


def check_options(params):
    rules.check_rollout_limits(params.get("max_concurrency"), params.get("max_errors"))
    rules.check_batches(params.get("batches"))
    delivery = params.get("delivery_timeout")
    if delivery is not None and not rules.DELIVERY_TIMEOUT_MIN <= delivery <= rules.DELIVERY_TIMEOUT_MAX:
        raise rules.SsmRunError(
            "delivery_timeout %s: SSM takes %d to %d seconds"
            % (delivery, rules.DELIVERY_TIMEOUT_MIN, rules.DELIVERY_TIMEOUT_MAX)
        )
    for name, low in (("timeout", 1), ("tail_lines", 0)):
        if params.get(name) is not None and params[name] < low:
            raise rules.SsmRunError("%s must be %d or more, not %s" % (name, low, params[name]))
    if params.get("poll_max_interval") is not None and params["poll_max_interval"] < 0.25:
        raise rules.SsmRunError("poll_max_interval must be 0.25 seconds or more")
    comment = params.get("comment")
    if comment and len(comment) > rules.COMMENT_MAX:
        raise rules.SsmRunError("comment is %d characters; SSM takes at most %d" % (len(comment), rules.COMMENT_MAX))


def resolve_targets(api, params):
    """``(instance_ids, names, tag_targets)``; fails when nothing matches."""
    if params.get("instance_ids") is not None:
        return rules.check_instance_ids(params["instance_ids"]), {}, None
    if params.get("inventory_hosts") is not None:
        return rules.instance_ids_from_hosts(params["inventory_hosts"]), {}, None
    tag_targets = rules.parse_tag_targets(params["targets"])
    reservations = api.describe_instances(rules.ec2_filters(tag_targets))
    ids = rules.running_instance_ids(reservations)
    if not ids:
        raise rules.SsmRunError(
            "no running instance has %s in %s; check the tag, the region and the profile"
            % (rules.describe_tag_targets(tag_targets), api.region or "the configured region")
        )
    return ids, rules.instance_names(reservations), tag_targets


# ----------------------------------------------------------------------- following


class Follower:
    """Follows the commands of one batch until every invocation is terminal.

    One page of invocations (one command, at most 50 instances): polls
    ListCommandInvocations, which gives every instance's Status at each poll.
    Bigger: polls ListCommands (one call for up to 50 commands), whose counters say
    how many invocations completed, and lists each command's invocations (50 a page)
    once, when that command is over. The delay between polls comes from
    ``_ssm_run.PollSchedule``.
    """

    def __init__(self, api, clock=time.monotonic, sleep=time.sleep, report=None, poll_max_interval=5.0):
        self.api = api
        self.clock = clock
        self.sleep = sleep
        self.report = report
        self.poll_max_interval = poll_max_interval
        self.polls = 0
        self.finished = {}  # command ID -> its invocations (Details), once it is over

    def follow(self, sends, expected, deadline, label=None):
        """Poll until done or ``deadline`` (clock time). Returns ``"done"`` or ``"timeout"``.

        In the ListCommands mode, the invocations of each command are listed (with their
        output) as soon as that command is over, and kept in ``self.finished``: when the
        last one ends, only its own command remains to be read.
        """
        command_ids = [send["command_id"] for send in sends]
        invoked_after = min((send.get("requested") for send in sends if send.get("requested")), default=None)
        one_page = len(command_ids) == 1 and len(expected) <= rules.LIST_PAGE_MAX
        schedule = rules.PollSchedule(cap=self.poll_max_interval)
        started = self.clock()
        delay, last_phrase = schedule.floor, None
        while True:
            self.sleep(max(0.0, min(delay, deadline - self.clock())))
            self.polls += 1
            try:
                done, phrase, completed = self._poll(command_ids, expected, one_page, invoked_after, started)
            except Exception as exc:  # botocore's ClientError, not imported here
                # Right after SendCommand, SSM may not know the command yet.
                if error_code(exc) != "InvalidCommandId" or self.clock() - started > MISSING_GRACE:
                    raise
                done, phrase, completed = False, last_phrase, schedule.completed
            if self.report and label and phrase and phrase != last_phrase:
                self.report(rules.progress_line(label[0], label[1], len(expected), phrase, self.clock() - started))
            last_phrase = phrase
            if done:
                return "done"
            if self.clock() >= deadline:
                return "timeout"
            delay = schedule.observe(self.clock(), completed, len(expected))

    def _poll(self, command_ids, expected, one_page, invoked_after, started):
        """One poll: ``(done, progress phrase, completed count)``."""
        if one_page:
            invocations = self.api.list_invocations(command_ids[0])
            fold = rules.fold_statuses(expected, invocations)
            if not fold["done"] and self._only_missing_left(fold, invocations, self.clock() - started):
                over = rules.commands_terminal(self.api.list_commands(command_ids), command_ids)
                fold = rules.fold_statuses(expected, invocations, over)
            completed = sum(1 for s in fold["instances"].values() if s["outcome"] is not None)
            return fold["done"], rules.status_phrase(fold["counts"]), completed
        commands = self.api.list_commands(command_ids, invoked_after)
        counters = rules.command_counts(commands)
        for command in commands:
            cid = command["CommandId"]
            if cid not in self.finished and rules.commands_terminal([command], [cid]):
                self.finished[cid] = self.api.list_invocations(cid, details=True)
        return rules.commands_terminal(commands, command_ids), rules.counters_phrase(counters), counters["completed"]

    @staticmethod
    def _only_missing_left(fold, invocations, elapsed):
        """Every instance is over or has no invocation, and some have none: ask whether
        the command is over (not in the first seconds, while SSM creates them)."""
        states = fold["instances"].values()
        waiting = all(s["outcome"] is not None or s["status"] is None for s in states)
        return waiting and (bool(invocations) or elapsed > MISSING_GRACE)


# ------------------------------------------------------------------------- results


class Rollout:
    """Runs the batches one after the other and builds the result."""

    def __init__(self, api, params, check_mode=False, report=None, clock=time.monotonic, sleep=time.sleep):
        self.api = api
        self.params = params
        self.check_mode = check_mode
        self.report = report
        self.clock = clock
        self.sleep = sleep
        self.follower = Follower(api, clock, sleep, report, params.get("poll_max_interval") or 5.0)
        self.sent = []  # command IDs, as soon as each is sent
        self._names = {}
        self._document = None

    def partial(self):
        """What a caller returns when the run stopped on an error: the commands already sent."""
        return {"changed": bool(self.sent), "command_ids": list(self.sent)}

    def aws_error_message(self, detail=None):
        text = "an AWS call failed in %s" % (self.api.region or "the configured region")
        if detail:
            text += ": %s" % detail
        if self.sent:
            text += (
                "; commands %s were already sent and may still be running: follow them with "
                "aws ssm list-command-invocations --command-id <id>, or stop them with aws ssm cancel-command"
                % ", ".join(self.sent)
            )
        return text

    # -- the whole thing

    def run(self):
        """Returns ``(result, failure_message_or_None)``."""
        params = self.params
        check_options(params)
        document, parameters = document_parameters(params, self.api.region, self.check_mode)
        self._document = document
        ids, names, tag_targets = resolve_targets(self.api, params)
        online, offline = rules.preflight(ids, self.api.instance_information(ids))
        if offline and not params.get("skip_offline"):
            raise rules.SsmRunError(rules.offline_message(offline, len(ids)))
        if not online:
            raise rules.SsmRunError(
                "every target instance is offline, nothing to run on: %s" % ", ".join(o["instance_id"] for o in offline)
            )
        batches = rules.plan_batches(online, params.get("batches"))
        # Tags go to SSM as they are only when SSM would target exactly the same
        # instances in one go: max_concurrency and max_errors then hold fleet-wide.
        by_tags = tag_targets if (tag_targets and len(batches) == 1 and not offline) else None
        result = {
            "changed": False,
            "document_name": document,
            "check_mode": self.check_mode,
            "command_ids": [],
            "batches": [],
            "instances": [],
            "skipped": [dict(o, outcome=rules.SKIPPED) for o in offline],
            "timed_out": False,
        }
        self._names = names
        ansible = document == rules.DEFAULT_DOCUMENT
        if self.check_mode and not ansible:
            # Only AWS-ApplyAnsiblePlaybooks has a dry run (Check=True); others are not sent.
            result["batches"] = [
                {"batch": n, "instance_ids": b, "command_ids": [], "status": "not_sent_check_mode"}
                for n, b in enumerate(batches, start=1)
            ]
            result["changed"] = True
            result["summary"] = {"total": len(online), "would_run": len(online), "skipped": len(offline)}
            result["msg"] = "check mode: %s would run on %d instance%s in %d batch%s; nothing was sent" % (
                document,
                len(online),
                "" if len(online) == 1 else "s",
                len(batches),
                "" if len(batches) == 1 else "es",
            )
            return result, None
        deadline = self.clock() + params["timeout"]
        failure = None
        states = []
        for number, batch in enumerate(batches, start=1):
            if number > 1 and self.clock() >= deadline:
                # Out of time between two batches: the next one is not sent.
                result["timed_out"] = True
                stopped = self._stop(result, batches, number)
                states.extend(stopped)
                failure = (
                    "timed out after %ss (timeout) with batch %d/%d done; the %d instances of the later batches "
                    "were never sent the command" % (params["timeout"], number - 1, len(batches), len(stopped))
                )
                break
            entry = {"batch": number, "instance_ids": batch, "command_ids": [], "status": "running"}
            result["batches"].append(entry)
            sends = self._send(document, parameters, batch, by_tags)
            entry["command_ids"] = [s["command_id"] for s in sends]
            result["command_ids"].extend(entry["command_ids"])
            outcome = self.follower.follow(sends, batch, deadline, label=(number, len(batches)))
            snapshot = None
            if outcome == "timeout":
                snapshot = self._snapshot(sends)
                for send in sends:
                    self.api.cancel_command(send["command_id"])
                self.follower.follow(sends, batch, self.clock() + CANCEL_GRACE, label=(number, len(batches)))
                result["timed_out"] = True
            batch_states = self._final_states(sends, batch, number, snapshot)
            states.extend(batch_states)
            failed = [s for s in batch_states if s["outcome"] != "success"]
            entry["status"] = "timed_out" if snapshot is not None else ("failed" if failed else "success")
            if failed or snapshot is not None:
                later = self._stop(result, batches, number + 1)
                states.extend(later)
                failure = self._failure(failed, number, len(batches), len(later), snapshot)
                break
        result["instances"] = states
        result["summary"] = rules.summarize(states + result["skipped"])
        result["changed"] = self._changed(states)
        if failure is None:
            result["msg"] = "%s succeeded on %d instance%s in %d batch%s%s" % (
                document,
                len(states),
                "" if len(states) == 1 else "s",
                len(batches),
                "" if len(batches) == 1 else "es",
                " (check mode: --check on the instances)" if self.check_mode else "",
            )
        return result, failure

    # -- steps

    def _send(self, document, parameters, batch, by_tags):
        params = self.params
        base = {"DocumentName": document, "Parameters": parameters}
        optional = {
            "DocumentVersion": params.get("document_version"),
            "Comment": params.get("comment") or "mlops.deploy.ssm_run_playbook",
            "MaxConcurrency": params.get("max_concurrency"),
            "MaxErrors": params.get("max_errors"),
            "TimeoutSeconds": params.get("delivery_timeout"),
        }
        base.update({k: v for k, v in optional.items() if v is not None})
        if params.get("cloudwatch_log_group"):
            base["CloudWatchOutputConfig"] = {
                "CloudWatchOutputEnabled": True,
                "CloudWatchLogGroupName": params["cloudwatch_log_group"],
            }
        if by_tags:
            groups = [(None, batch)]
        else:
            groups = [(chunk, chunk) for chunk in rules.chunks(batch, rules.SEND_INSTANCE_IDS_MAX)]
        sends = []
        for instance_ids, expected in groups:
            call = dict(base)
            if instance_ids is None:
                call["Targets"] = rules.ssm_targets(by_tags)
            else:
                call["InstanceIds"] = instance_ids
            command = self.api.send_command(**call)
            self.sent.append(command["CommandId"])
            requested = command.get("RequestedDateTime")
            sends.append(
                {
                    "command_id": command["CommandId"],
                    "instance_ids": expected,
                    "requested": _iso(requested) if requested is not None else None,
                }
            )
        return sends

    def _snapshot(self, sends):
        """Where each instance had got to when the wait timed out."""
        seen = {}
        for send in sends:
            for invocation in self.api.list_invocations(send["command_id"]):
                seen[invocation["InstanceId"]] = invocation.get("Status")
        return seen

    def _final_states(self, sends, batch, number, snapshot):
        tail_lines = self.params.get("tail_lines", 20)
        invocations, details = [], {}
        for send in sends:
            listed = self.follower.finished.pop(send["command_id"], None)
            if listed is None or snapshot is not None:
                listed = self.api.list_invocations(send["command_id"], details=True)
            for invocation in listed:
                invocations.append(invocation)
                details[invocation["InstanceId"]] = rules.invocation_details(invocation, tail_lines)
        fold = rules.fold_statuses(batch, invocations, commands_done=True)
        group = self.params.get("cloudwatch_log_group")
        states = []
        for instance_id, state in fold["instances"].items():
            state = dict(state)
            info = details.get(instance_id, {"response_code": None, "duration": None})
            state.update(
                {
                    "batch": number,
                    "instance_name": self._names.get(instance_id),
                    "response_code": info.get("response_code"),
                    "duration": info.get("duration"),
                    "stdout_tail": info.get("stdout_tail", []),
                    "stderr_tail": info.get("stderr_tail", []),
                    "log_stream": None,
                    "changed": rules.recap_changed(info.get("recap")),
                    "_truncated": info.get("truncated", False),
                    "_step": info.get("step") or rules.ANSIBLE_STEP,
                }
            )
            if group and state["command_id"]:
                state["log_stream"] = "%s/%s/%s/stdout" % (
                    state["command_id"],
                    instance_id,
                    ssm_step_name(state["_step"]),
                )
            if snapshot is not None:
                state["status_at_timeout"] = snapshot.get(instance_id)
            states.append(state)
        if group:
            self._cloudwatch_tails(group, states, tail_lines)
            self._cloudwatch_recaps(group, states)
            if self.params.get("output_filter"):
                self._cloudwatch_matches(group, states, self.params["output_filter"])
        for state in states:
            del state["_truncated"], state["_step"]
        return states

    def _cloudwatch_tails(self, group, states, tail_lines):
        """The last lines of failed instances whose invocation output SSM cut (it keeps
        the first 2,500 characters), from their CloudWatch streams, whole."""
        reader = LogReader(self.api.logs, self.api.region)
        wanted = [s for s in states if s["outcome"] != "success" and s["command_id"] and s["_truncated"]]
        pending = {
            (s["instance_id"], output): s for s in wanted[:CLOUDWATCH_TAILS_MAX] for output in ("stdout", "stderr")
        }

        def read(key):
            state, output = pending[key], key[1]
            selection = {
                "ssm_command_id": state["command_id"],
                "instance_id": state["instance_id"],
                "step": state["_step"],
                "output": output,
            }
            try:
                events = reader.read(group, selection, tail_lines=tail_lines)["events"]
            except LogsError:
                return None  # no such stream (yet)
            return [event["message"] for event in events]

        def settled(key, lines, before):
            # The agent uploads output while and after the step runs: the stream is whole
            # once it ends with a play recap, or once it stopped growing.
            if key[1] == "stdout" and rules.parse_recap("\n".join(lines or [])):
                return True
            return lines is not None and lines == before

        for key, lines in self._settle(pending, read, settled).items():
            if lines:
                pending[key][key[1] + "_tail"] = rules.tail("\n".join(lines), tail_lines)

    def _cloudwatch_recaps(self, group, states):
        """The PLAY RECAP of instances whose invocation output SSM cut before it."""
        if self._document != rules.DEFAULT_DOCUMENT:
            return
        waiting = {}
        for state in states:
            if state["changed"] is None and state["_truncated"] and state["response_code"] not in (None, -1):
                waiting.setdefault(state["command_id"], {})[state["instance_id"]] = state
        reader = LogReader(self.api.logs, self.api.region)

        def read(command_id):
            selection = {"ssm_command_id": command_id, "step": rules.ANSIBLE_STEP, "output": "stdout"}
            try:
                events = reader.read(group, selection, pattern='"unreachable="')["events"]
            except LogsError:
                return {}
            by_instance = {}
            for event in events:
                parts = (event.get("stream") or "").split("/")
                if len(parts) == 4:
                    by_instance.setdefault(parts[1], []).append(event["message"])
            return {iid: rules.parse_recap("\n".join(lines)) for iid, lines in by_instance.items()}

        def settled(command_id, recaps, _before):
            return all(recaps.get(iid) for iid in waiting[command_id])

        for command_id, recaps in self._settle(waiting, read, settled).items():
            for instance_id, state in waiting[command_id].items():
                state["changed"] = rules.recap_changed(recaps.get(instance_id))

    def _cloudwatch_matches(self, group, states, pattern):
        """``output_lines``: each instance's stdout lines matching ``pattern`` (a CloudWatch
        filter pattern), whatever SSM cut from the invocation output: one FilterLogEvents
        (paged) per command, read again until every instance whose playbook ran has a
        match or the output settled."""
        by_command = {}
        for state in states:
            state["output_lines"] = []
            if state["command_id"]:
                by_command.setdefault(state["command_id"], {})[state["instance_id"]] = state
        reader = LogReader(self.api.logs, self.api.region)

        def read(command_id):
            step = next(iter(by_command[command_id].values()))["_step"]
            selection = {"ssm_command_id": command_id, "step": step, "output": "stdout"}
            try:
                events = reader.read(group, selection, pattern=pattern)["events"]
            except LogsError:
                return {}
            lines = {}
            for event in events:
                parts = (event.get("stream") or "").split("/")
                if len(parts) == 4:
                    lines.setdefault(parts[1], []).append(event["message"])
            return lines

        def settled(command_id, lines, before):
            ran = [iid for iid, s in by_command[command_id].items() if s["response_code"] == 0]
            return all(lines.get(iid) for iid in ran) or lines == before

        for command_id, lines in self._settle(by_command, read, settled).items():
            for instance_id, state in by_command[command_id].items():
                state["output_lines"] = lines.get(instance_id, [])

    def _settle(self, keys, read, settled):
        """Read each key until ``settled(key, value, previous)`` or CLOUDWATCH_SETTLE
        seconds passed; returns the last value read for each."""
        deadline = self.clock() + CLOUDWATCH_SETTLE
        values, previous = {}, {}
        todo = list(keys)
        while todo:
            for key in todo:
                values[key] = read(key)
            todo = [key for key in todo if not settled(key, values[key], previous.get(key))]
            if not todo or self.clock() >= deadline:
                return values
            previous.update((key, values[key]) for key in todo)
            self.sleep(1.0)
        return values

    def _stop(self, result, batches, first):
        """Batches ``first`` and later are not sent: record them, return their instances."""
        states = []
        for number, batch in enumerate(batches[first - 1 :], start=first):
            result["batches"].append(
                {"batch": number, "instance_ids": batch, "command_ids": [], "status": "not_started"}
            )
            for instance_id in batch:
                states.append(
                    {
                        "instance_id": instance_id,
                        "instance_name": self._names.get(instance_id),
                        "batch": number,
                        "command_id": None,
                        "status": None,
                        "status_details": None,
                        "outcome": rules.NOT_STARTED,
                        "response_code": None,
                        "duration": None,
                        "stdout_tail": [],
                        "stderr_tail": [],
                        "log_stream": None,
                        "changed": False,
                    }
                )
        return states

    def _changed(self, states):
        ran = [s for s in states if s["command_id"] and s["response_code"] not in (None, -1)]
        if self._document != rules.DEFAULT_DOCUMENT:
            return bool(ran)
        # The plays' recaps say; an instance whose recap is unknown counts as changed.
        return any(s["changed"] is not False for s in ran)

    def _failure(self, failed, number, total, not_started, snapshot):
        if snapshot is not None:
            reached = ", ".join(
                "%s %s" % (s["instance_id"], s.get("status_at_timeout") or "no invocation") for s in failed[:20]
            )
            return (
                "timed out after %ss (timeout) waiting for batch %d/%d; the command was cancelled. Where each "
                "unfinished instance had got to: %s%s"
                % (
                    self.params["timeout"],
                    number,
                    total,
                    reached,
                    "" if not not_started else "; %d instances in later batches were never sent" % not_started,
                )
            )
        return rules.failure_message(failed, number, total, not_started)


def _iso(moment):
    """A RequestedDateTime (datetime, aware or naive UTC) as the InvokedAfter filter wants it."""
    if not hasattr(moment, "strftime"):
        return str(moment)
    if moment.utcoffset() is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

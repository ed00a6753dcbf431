# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a person reads when a release fails: a short block of lines.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by the ``failure_report`` filter (the release role's
failing task prints the block as its ``msg``).

Plain functions: the registered results of the release's tasks in (``ssm_run_playbook``
for the rollout and the rollback, ``deploy_lock``, ``endpoint_test``), a list of lines
out, none of them longer than ``LINE_MAX``. Which release failed where; per failed
instance its id, the step that failed and the reason in one line (the instance-side
module's ``msg``), the container's last log lines each on its own line; what was rolled
back to which release; which instances never received it. Everything else stays in
the registered results (shown with ``-v``).

What each instance did comes from its own report when it printed one (the
``MLOPS_DEPLOY_SUMMARY`` line of the bundle's deploy playbook, with a ``failures``
list), else from the tail of its output (Ansible's ``[ERROR]`` lines, as a bundle of an
earlier version prints them: a rollback runs the previous release's own playbook), else
from what SSM says of the invocation.
"""

from __future__ import annotations

import json
import re

from ansible_collections.mlops.deploy.plugins.module_utils._deploy_summary import (
    parse_summary,
    split_message,
    step_name,
)
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_run import OUTCOME_WORDS

LINE_MAX = 240  # characters of a line of the block; the rest is in the results (-v)
LOG_LINES = 5  # last log lines shown of a failed container (first failed instance)
LOG_LINES_MORE = 2  # ... of the next ones
DETAILED_MAX = 3  # failed instances shown one by one; the others are counted
IDS_MAX = 8  # instance ids listed in one line
URLS_MAX = 5  # failed URLs listed per endpoint
FOOTER = "Run with -v for the full results."

_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}")
_ECR_PREFIX = re.compile(r"\b\d{12}\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?(?::\d+)?/")
_SSM_DOWNLOADS = re.compile(r"/var/lib/amazon/ssm/[^\s:]+?/downloads\b")
_ERROR_PREFIX = re.compile(r"^\[ERROR\]: (?:Task failed: )?(?:(?:Module|Action) failed: )?")
_TASK_BANNER = re.compile(r"^TASK \[(?P<name>.*?)\]\s*\**$")
_ITEM = re.compile(r"^(?:failed|fatal): \[[^\]]+\](?: \(item=(?P<item>[^)]*)\))? => ")
_TIMEOUT = re.compile(r"timed out after (\d+)s")


# ------------------------------------------------------------------------- text


def tidy(text):
    """Digests cut to 12 hex, ECR hosts before an image name and SSM's download
    directory left out: what a reader needs of a reference, not all of it."""
    text = _DIGEST.sub(r"\1…", str(text if text is not None else ""))
    text = _ECR_PREFIX.sub("", text)
    return _SSM_DOWNLOADS.sub("<bundle>", text)


def short(text, width=LINE_MAX):
    """One line of at most ``width`` characters (leading indentation kept, inner runs of
    white space one space, the end cut with …)."""
    text = tidy(text)
    indent = text[: len(text) - len(text.lstrip(" "))]
    text = indent + " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def short_keep_spaces(text, width=LINE_MAX):
    """A log line as it is (inner spacing kept), cut at ``width``."""
    text = tidy(text).rstrip().replace("\t", "    ")
    return text if len(text) <= width else text[: width - 1] + "…"


def id_list(ids, limit=IDS_MAX):
    ids = list(ids)
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else "%s and %d more" % (shown, len(ids) - limit)


def plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def _first_line(text):
    return next((line for line in str(text or "").splitlines() if line.strip()), "")


def _sentences(text):
    """``"A: b (c). D. E?"`` -> ``["A: b (c).", "D.", "E?"]`` (breaks only after ``. `` and ``? ``)."""
    return [part.strip() for part in re.split(r"(?<=[.?])\s+(?=[A-Z])", " ".join(str(text).split())) if part.strip()]


# ----------------------------------------------------------- what an instance said


def instance_summary(state):
    """The last report an instance printed (``output_lines``, then its output tails)."""
    lines = list(state.get("output_lines") or []) + list(state.get("stdout_tail") or [])
    for line in reversed(lines):
        report = parse_summary(line)
        if report is not None:
            return report
    return None


def story_from_output(lines):
    """What failed, from an instance's output lines (Ansible's default callback): the
    last ``[ERROR]:`` message with its following lines up to ``Origin:``, the task it
    belongs to, the loop item. ``{"step", "endpoint", "msg"}`` or None."""
    lines = [str(line) for line in lines or []]
    found = None
    for index, line in enumerate(lines):
        if line.startswith("[ERROR]: "):
            found = index
    if found is None:
        return _story_from_dump(lines)
    message = [_ERROR_PREFIX.sub("", lines[found])]
    for line in lines[found + 1 :]:
        if line.startswith(("Origin: ", "PLAY RECAP")) or _ITEM.match(line):
            break
        message.append(line)
    items = (m.group("item") for m in map(_ITEM.match, lines[found + 1 :]) if m)
    task = next((m.group("name") for m in map(_TASK_BANNER.match, reversed(lines[:found])) if m), None)
    return {"step": step_name(task=task), "endpoint": next(items, None), "msg": "\n".join(message).strip()}


def _story_from_dump(lines):
    """A ``fatal: [...]: FAILED! => {json}`` line (a JSON callback, no [ERROR] line)."""
    for line in reversed(lines):
        match = _ITEM.match(line)
        if not match:
            continue
        try:
            result = json.loads(line[match.end() :])
        except ValueError:
            return {"step": None, "endpoint": match.group("item"), "msg": line[match.end() :]}
        if isinstance(result, dict) and result.get("msg"):
            return {"step": None, "endpoint": match.group("item"), "msg": str(result["msg"])}
    return None


def _ssm_reason(state, timeout=None):
    """Why SSM says an instance failed, when its own output says nothing."""
    if state.get("reason"):  # set by the follower for an instance it gave up on
        return str(state["reason"])
    if state.get("lost_reason"):  # the host watcher: its agent went silent or it stopped running
        return "%s; its invocation was cancelled" % state["lost_reason"]
    outcome = state.get("outcome")
    if "status_at_timeout" in state:
        where = state.get("status_at_timeout") or "not yet invoked"
        return "still %s when the rollout's timeout%s ended; its command was cancelled" % (
            where,
            " (%ss)" % timeout if timeout else "",
        )
    words = OUTCOME_WORDS.get(outcome, outcome or "failed")
    details = state.get("status_details")
    if details and details.replace(" ", "").lower() != str(words).replace(" ", "").lower():
        words = "%s (%s)" % (words, details)
    code = state.get("response_code")
    if code not in (None, -1):
        words += ", exit code %s" % code
    return "SSM: " + words


def instance_failures(state, timeout=None):
    """What went wrong on one instance: ``[{"step", "endpoint", "reason", "logs"}]``."""
    report = instance_summary(state)
    if report and report.get("failures"):
        found = []
        for failure in report["failures"]:
            reason, logs = split_message(failure.get("msg"))
            structured = failure.get("logs")
            if isinstance(structured, dict) and structured:
                logs = sorted((name, list(lines or [])) for name, lines in structured.items())
            found.append(
                {
                    "step": failure.get("step") or step_name(task=failure.get("task")),
                    "endpoint": failure.get("endpoint"),
                    "reason": reason or "failed",
                    "logs": logs,
                }
            )
        return found
    if state.get("response_code") not in (None, -1) and "status_at_timeout" not in state:
        story = story_from_output(state.get("stdout_tail")) or story_from_output(state.get("stderr_tail"))
        if story and story["msg"]:
            reason, logs = split_message(story["msg"])
            return [{"step": story["step"], "endpoint": story["endpoint"], "reason": reason, "logs": logs}]
    return [{"step": None, "endpoint": None, "reason": _ssm_reason(state, timeout), "logs": []}]


# ------------------------------------------------------------- did it fail?


def rollout_failed(result):
    """Whether an ``ssm_run_playbook`` result is a failed rollout, from its return values
    alone (as the module decides: a batch that failed or timed out, a timeout between
    batches, or a stop before sending, which returns no ``summary``): the release role
    runs the rollout with ``failed_when: false`` and tells the failure itself, once."""
    result = result or {}
    if result.get("skipped") is True:  # the task did not run (when:)
        return False
    if "summary" not in result:
        return True
    return bool(result.get("timed_out")) or any(
        b.get("status") in ("failed", "timed_out") for b in result.get("batches") or []
    )


def _test_results(tests):
    """The per-endpoint results of ``endpoint_test``: the loop's ``results``, or the one result."""
    tests = tests or {}
    results = tests.get("results") or []
    if not results or all("ok" in r for r in results):  # one endpoint_test result, not a loop's
        results = [tests]
    return results


def _test_failed(result):
    """An endpoint's test result failed: a URL not as expected, or the stress test
    (whatever ``failed_when`` made of the task's own status)."""
    urls = result.get("results") or []
    stress = result.get("stress") or {}
    return any(not u.get("ok", True) for u in urls) or stress.get("passed") is False or bool(result.get("failed"))


def tests_failed(tests):
    """Whether a registered ``endpoint_test`` result (looped or not) holds a failure."""
    return any(_test_failed(r) for r in _test_results(tests))


def lock_taken(lock_result):
    """Whether a registered ``deploy_lock`` (``state: present``) result took the lock
    (``acquired`` is returned only then)."""
    return bool((lock_result or {}).get("acquired"))


# ------------------------------------------------------------------- the blocks


def _what(release):
    endpoints = release.get("endpoints") or []
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    of = " of %s" % ", ".join(endpoints) if endpoints else ""
    return "Release %s%s" % (release["id"], of) if release.get("id") else "The release%s" % of


def _where(failure):
    """``"deploy of titanic"``: the step that failed, and the endpoint it was deploying."""
    where = failure["step"] or ""
    return "%s of %s" % (where, failure["endpoint"]) if where and failure["endpoint"] else where


def _failure_lines(instance_id, failures, log_lines, seen):
    """One line per failure of an instance (its id, the step, the reason), then the last
    log lines of its containers, each on its own line; a reason already shown for another
    instance is named, not repeated (``seen``: reason -> instance id)."""
    lines = []
    for failure in failures:
        where = _where(failure)
        label = "%s, %s" % (instance_id, where) if where else instance_id
        key = (where, short(failure["reason"]))
        if key in seen:
            lines.append(short("  %s: the same as %s" % (label, seen[key])))
            continue
        seen[key] = instance_id
        lines.append(short("  %s: %s" % (label, failure["reason"])))
        for name, log in failure["logs"]:
            log = [line for line in log if str(line).strip()][-log_lines:]
            if log:
                lines.append(short("    last log lines of %s:" % name))
                lines.extend("      " + short_keep_spaces(line, LINE_MAX - 6) for line in log)
    return lines


def rollout_lines(release, rollout, rollback=None, back_to=None):
    """The block for a failed rollout (``ssm_run_playbook``'s registered result); no
    lines when it did not fail.

    ``release``: ``{"id", "env", "endpoints"}``; ``rollback``: the registered result of
    putting the reached instances back (None, or skipped, when it did not run);
    ``back_to``: the release id they were put back on (None: there was none)."""
    rollout = rollout or {}
    if not rollout_failed(rollout):
        return []
    env = release.get("env") or "?"
    states = rollout.get("instances") or []
    if not states and not rollout.get("batches"):
        return _not_sent_lines(release, rollout)
    batches = rollout.get("batches") or []
    timeout = _TIMEOUT.search(str(rollout.get("msg") or ""))
    timeout = timeout.group(1) if timeout else None
    failed = [s for s in states if s.get("outcome") not in ("success", "not_started", "skipped")]
    failed_batch = min((s.get("batch") or 0 for s in failed), default=None)
    batch_entry = next((b for b in batches if b.get("batch") == failed_batch), {})
    where = "at batch %s/%d" % (failed_batch, len(batches)) if failed_batch else ""
    if failed_batch == 1 and len(batches) > 1 and len(batch_entry.get("instance_ids") or []) == 1:
        where += " (the canary)"
    in_batch = len(batch_entry.get("instance_ids") or []) or len(failed)
    if rollout.get("timed_out"):
        head = "%s timed out in %s %s%s; its command was cancelled." % (
            _what(release),
            env,
            where,
            " after %ss" % timeout if timeout else "",
        )
    else:
        head = "%s failed in %s %s: %d of %s failed." % (
            _what(release),
            env,
            where,
            len(failed),
            plural(in_batch, "instance"),
        )
    lines = [short(" ".join(head.split()))]
    seen = {}
    for index, state in enumerate(failed[:DETAILED_MAX]):
        lines.extend(
            _failure_lines(
                state["instance_id"],
                instance_failures(state, timeout),
                LOG_LINES if index == 0 else LOG_LINES_MORE,
                seen,
            )
        )
    rest = failed[DETAILED_MAX:]
    if rest:
        same = all((_where(f), short(f["reason"])) in seen for state in rest for f in instance_failures(state, timeout))
        lines.append(
            short(
                "  and %d more failed%s: %s"
                % (len(rest), " the same way" if same else "", id_list(s["instance_id"] for s in rest))
            )
        )
    lines.extend(rollback_lines(rollout, rollback, back_to))
    never = [s["instance_id"] for s in states if s.get("outcome") == "not_started"]
    if never:
        numbers = sorted({s.get("batch") for s in states if s.get("outcome") == "not_started" and s.get("batch")})
        span = (
            ""
            if not numbers
            else " (batch %d)" % numbers[0]
            if len(numbers) == 1
            else " (batches %d-%d)" % (numbers[0], numbers[-1])
        )
        lines.append(short("Never received it, unchanged: %s%s." % (id_list(never), span)))
    skipped = [s["instance_id"] for s in rollout.get("skipped_instances") or []]
    if skipped:
        lines.append(short("Skipped (offline): %s." % id_list(skipped)))
    lines.append(FOOTER)
    return lines


def rollback_lines(rollout, rollback=None, back_to=None):
    """What became of the instances the release reached."""
    reached = [s["instance_id"] for s in (rollout or {}).get("instances") or [] if s.get("command_id")]
    if not reached:
        return ["Nothing was changed: no instance had received it."]
    if not back_to:
        return [
            short(
                "Not rolled back: there is no earlier successful release to go back to; %s keep%s what the deploy "
                "left (compose_deploy puts the previous containers back when health fails)."
                % (id_list(reached), "s" if len(reached) == 1 else "")
            )
        ]
    if not rollback or rollback.get("skipped"):
        return [short("Not rolled back to %s: the rollback did not run (%s)." % (back_to, id_list(reached)))]
    if rollout_failed(rollback):
        lines = [short("Putting %s back on %s FAILED too:" % (id_list(reached), back_to))]
        failed = [s for s in rollback.get("instances") or [] if s.get("outcome") not in ("success", "not_started")]
        if failed:
            for state in failed[:DETAILED_MAX]:
                failure = instance_failures(state)[0]
                lines.append(short("  %s: %s" % (state["instance_id"], failure["reason"])))
        else:
            lines.append(short("  " + (_sentences(rollback.get("msg") or "")[:1] or ["failed"])[0]))
        return lines
    offline = {s["instance_id"] for s in rollback.get("skipped_instances") or []}
    back = [i for i in reached if i not in offline]
    if not offline:
        return [short("Rolled back: %s back on %s." % (id_list(back), back_to))]
    return [
        short(
            "Rolled back: %s back on %s, except %s, which cannot receive commands (offline)."
            % (id_list(back) or "none", back_to, id_list(sorted(offline)))
        )
    ]


def _not_sent_lines(release, rollout):
    """The rollout stopped before sending anything (pre-flight, bad options, AWS error)."""
    msg = str(rollout.get("msg") or "the rollout failed before sending anything")
    lines = [short("%s was not sent in %s:" % (_what(release), release.get("env") or "?"))]
    offline = rollout.get("offline") or []
    if offline:
        lines.append(short("  %s cannot receive commands; nothing was sent:" % plural(len(offline), "instance")))
        lines.extend(short("  %s: %s" % (o["instance_id"], o.get("reason") or "offline")) for o in offline[:IDS_MAX])
        if len(offline) > IDS_MAX:
            lines.append(short("  and %d more" % (len(offline) - IDS_MAX)))
        # What to do about it: the message's sentences after the one naming them.
        hints = [s for s in _sentences(msg)[1:] if s != "Nothing was sent."]
        lines.extend(short("  " + sentence) for sentence in hints[:3])
    else:
        lines.extend(short("  " + sentence) for sentence in _sentences(msg)[:6])
    lines.append(FOOTER)
    return [line.replace("Set skip_offline=true", "Set release_skip_offline=true") for line in lines]


def lock_lines(release, lock_result):
    """The block for a deploy that could not take the environment's deploy lock; no
    lines when it took it."""
    if lock_taken(lock_result):
        return []
    lock = (lock_result or {}).get("lock") or {}
    env = release.get("env") or "?"
    head = short("%s was not deployed to %s: another run holds its deploy lock." % (_what(release), env))
    if not lock.get("owner") and not lock.get("run_id"):
        return [head] + [short("  " + s) for s in _sentences((lock_result or {}).get("msg") or "")[:4]] + [FOOTER]
    age = lock.get("age_seconds")
    return [
        head,
        short(
            "  %s is held by %s (run %s, release %s) since %s%s%s."
            % (
                lock.get("name") or "the lock",
                lock.get("owner") or "?",
                lock.get("run_id") or "?",
                lock.get("release") or "?",
                lock.get("acquired_at") or "?",
                " (%ss ago)" % age if age is not None else "",
                ", stale: past its ttl" if lock.get("stale") else ", expires at %s" % lock.get("expires_at"),
            )
        ),
        "  Let that run finish, or queue behind it with release_lock_wait=<seconds>;",
        "  if it died, break the lock with release_force_unlock=true.",
        FOOTER,
    ]


def tests_lines(release, tests):
    """The block for failed endpoint tests (``endpoint_test`` results, one per endpoint:
    the loop's ``results``, or one result); no lines when every test passed."""
    failed = [r for r in _test_results(tests) if _test_failed(r)]
    if not failed:
        return []
    env = release.get("env") or "?"
    lines = [short("%s is deployed in %s, but its tests failed:" % (_what(release), env))]
    for result in failed:
        name = (result.get("endpoint") or {}).get("name") or result.get("item") or "endpoint"
        urls = [u for u in result.get("results") or [] if not u.get("ok")]
        if urls:
            expected = re.search(r"\((expected [^()]*(?:\([^()]*\)[^()]*)*)\)\s*$", str(result.get("msg") or ""))
            lines.append(
                short(
                    "  %s, functional test: %d of %s failed%s:"
                    % (
                        name,
                        len(urls),
                        plural(len(result.get("results") or []), "URL"),
                        " (%s)" % expected.group(1) if expected else "",
                    )
                )
            )
            for url in urls[:URLS_MAX]:
                answer = url.get("body")
                lines.append(
                    short(
                        "    %s %s: %s%s"
                        % (
                            url.get("method") or "GET",
                            url.get("url"),
                            url.get("problem") or "failed",
                            "; answer: %s" % short(answer, 100)
                            if answer and "answer" not in str(url.get("problem"))
                            else "",
                        )
                    )
                )
            if len(urls) > URLS_MAX:
                lines.append("    and %d more URL(s)" % (len(urls) - URLS_MAX))
        stress = result.get("stress") or {}
        if stress and not stress.get("passed", True):
            latency = stress.get("latency_ms") or {}
            lines.append(
                short(
                    "  %s, stress test: %s (%s requests at %s: %s failed, p50 %s ms, p95 %s ms)"
                    % (
                        name,
                        "; ".join(stress.get("problems") or ["failed"]),
                        stress.get("requests"),
                        stress.get("concurrency"),
                        stress.get("failures"),
                        _ms(latency.get("p50")),
                        _ms(latency.get("p95")),
                    )
                )
            )
            for kind, example in sorted((stress.get("error_examples") or {}).items())[:3]:
                lines.append(short("    %s, e.g. %s" % (kind, example)))
        if not urls and not (stress and not stress.get("passed", True)):
            lines.append(short("  %s: %s" % (name, _first_line(result.get("msg")))))
    lines.append(FOOTER)
    return lines


def _ms(value):
    return "?" if value is None else ("%.1f" % value)

# Copyright: mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep a directory (an EFS mount) in step with an S3 prefix, safely.

Installed by the ``mlops.deploy.bastion_efs_sync`` role as ``/usr/local/sbin/mlops-efs-sync``
and run by its cron entry or systemd timer::

    mlops-efs-sync --config /etc/mlops-efs-sync/<name>.json

What one run does:

1. takes an exclusive ``flock(2)`` on the job's lock file; when another run holds it,
   logs so and exits 75 without touching anything (runs never overlap);
2. lists the source objects (``aws s3api list-objects-v2``) and the destination files;
3. with ``delete`` on, plans the deletions (destination files with no source object) and
   GUARDS them: when the source lists no objects, or the deletions exceed
   ``max_delete_share`` of the destination files, nothing at all is done and the run
   exits 3 with a log line saying why (a wrong or empty prefix must never wipe the weights);
4. copies with ``aws s3 sync`` (without ``--delete``), then deletes exactly the files
   planned and checked in step 3;
5. writes a status file (JSON): last run, last success, result, counts.

Logs go to a size-rotated file and to syslog (the journal on systemd hosts); warnings and
errors also go to stderr, so a healthy run is silent under cron.
Exit codes: 0 done, 1 failed (configuration, AWS CLI error), 3 refused by the delete
guard, 75 skipped because another run holds the lock.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import logging
import logging.handlers
import os
import subprocess
import sys
import time

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 3
EXIT_LOCKED = 75

REQUIRED_KEYS = ("name", "bucket", "destination", "status_file", "lock_file", "log_file", "aws_command")
DEFAULTS = {
    "prefix": "",
    "delete": False,
    "max_delete_share": 0.10,
    "endpoint_url": "",
    "region": "",
    "extra_args": [],
    "environment": {},
    "log_max_bytes": 10 * 1024 * 1024,
    "log_backups": 5,
    "syslog": True,
}


class SyncError(Exception):
    """A run that cannot go on; the message says what to fix."""


# ---------------------------------------------------------------- pure logic


def normalize_prefix(prefix: str) -> str:
    """``models`` and ``/models/`` both mean the folder ``models/``; ``""`` the whole bucket."""
    prefix = prefix.strip().lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


def relative_keys(keys: list[str], prefix: str) -> set[str]:
    """Object keys as paths relative to the prefix, as ``aws s3 sync`` maps them.

    Folder placeholders (keys ending in ``/``) hold no data and are left out.
    """
    prefix = normalize_prefix(prefix)
    out = set()
    for key in keys:
        if not key.startswith(prefix) or key.endswith("/"):
            continue
        rel = key[len(prefix) :]
        if rel:
            out.add(rel)
    return out


def plan_deletions(source: set[str], destination: set[str]) -> list[str]:
    """Destination files (relative paths) that no source object accounts for, sorted."""
    return sorted(destination - source)


def guard_reason(
    source_count: int, destination_count: int, deletions: int, max_share: float, source_url: str
) -> str | None:
    """Why a deleting sync must not run, or None when it may."""
    if source_count == 0:
        return (
            f"source {source_url} lists no objects: refusing to delete anything "
            "(a wrong or empty prefix must never wipe the destination); check the bucket and prefix"
        )
    if destination_count and deletions / destination_count > max_share:
        return (
            f"{deletions} of {destination_count} destination files "
            f"({deletions / destination_count:.0%}) would be deleted, above the limit of "
            f"{max_share:.0%} (max_delete_share): nothing deleted; if this is intended, "
            "raise the limit for one run or delete the files by hand"
        )
    return None


def count_sync_output(stdout: str) -> int:
    """Objects copied, from the lines ``aws s3 sync --no-progress`` prints."""
    return sum(1 for line in stdout.splitlines() if line.startswith("download: "))


def load_config(text: str) -> dict:
    """The job's settings (JSON written by the role), with defaults, checked."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SyncError(f"configuration is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SyncError("configuration must be a JSON object")
    missing = [key for key in REQUIRED_KEYS if not data.get(key)]
    if missing:
        raise SyncError(f"configuration lacks {', '.join(missing)}")
    config = {**DEFAULTS, **data}
    share = config["max_delete_share"]
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share <= 1:
        raise SyncError(f"max_delete_share must be a number between 0 and 1, not {share!r}")
    if isinstance(config["aws_command"], str):
        config["aws_command"] = [config["aws_command"]]
    config["prefix"] = normalize_prefix(config["prefix"])
    return config


def merge_status(previous: dict, run: dict) -> dict:
    """The new status file content: this run's facts, keeping the last success of earlier runs."""
    status = {**previous, **run}
    if run.get("result") == "ok":
        status["last_success_at"] = run["last_run_at"]
        status.pop("reason", None)
    return status


# ---------------------------------------------------------------- effects


def utcnow() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def setup_logging(config: dict) -> logging.Logger:
    logger = logging.getLogger(f"mlops-efs-sync.{config['name']}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    ident = f"mlops-efs-sync[{config['name']}]"
    os.makedirs(os.path.dirname(config["log_file"]) or ".", exist_ok=True)
    to_file = logging.handlers.RotatingFileHandler(
        config["log_file"], maxBytes=int(config["log_max_bytes"]), backupCount=int(config["log_backups"])
    )
    to_file.setFormatter(logging.Formatter(f"%(asctime)s {ident} %(levelname)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    logger.addHandler(to_file)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.WARNING)
    to_stderr.setFormatter(logging.Formatter(f"{ident} %(levelname)s: %(message)s"))
    logger.addHandler(to_stderr)
    if config["syslog"] and os.path.exists("/dev/log"):
        try:
            to_syslog = logging.handlers.SysLogHandler(address="/dev/log")
        except OSError as exc:
            logger.warning("syslog socket /dev/log not usable (%s); logging to the file only", exc)
        else:
            to_syslog.ident = f"{ident}: "
            logger.addHandler(to_syslog)
    return logger


def take_lock(path: str):
    """The open, exclusively locked lock file, or None when another run holds it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def lock_holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or "unknown"
    except OSError:
        return "unknown"


def aws_base(config: dict) -> list[str]:
    cmd = list(config["aws_command"])
    if config["endpoint_url"]:
        cmd += ["--endpoint-url", config["endpoint_url"]]
    if config["region"]:
        cmd += ["--region", config["region"]]
    return cmd


def run_aws(config: dict, args: list[str]) -> subprocess.CompletedProcess:
    cmd = aws_base(config) + args
    try:
        env = {**os.environ, **{str(k): str(v) for k, v in config["environment"].items()}}
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    except OSError as exc:
        raise SyncError(f"cannot run the AWS CLI {cmd[0]!r}: {exc}") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise SyncError(f"`{' '.join(args[:2])}` failed (rc {result.returncode}): {' | '.join(tail)}")
    return result


def list_source(config: dict) -> set[str]:
    args = ["s3api", "list-objects-v2", "--bucket", config["bucket"], "--output", "json", "--query", "Contents[].Key"]
    if config["prefix"]:
        args += ["--prefix", config["prefix"]]
    out = run_aws(config, args).stdout.strip()
    keys = json.loads(out) if out else None
    return relative_keys(keys or [], config["prefix"])


def list_destination(root: str) -> set[str]:
    if not os.path.isdir(root):
        raise SyncError(f"destination {root} is not a directory (is the file system mounted?)")
    out = set()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            out.add(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return out


def delete_files(root: str, relpaths: list[str]) -> int:
    real_root = os.path.realpath(root)
    deleted = 0
    for rel in relpaths:
        path = os.path.realpath(os.path.join(root, rel))
        if os.path.commonpath([real_root, path]) != real_root:
            raise SyncError(f"refusing to delete {path}: outside the destination {real_root}")
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        deleted += 1
    return deleted


def read_status(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(path: str, status: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(status, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def sync_once(config: dict, logger: logging.Logger) -> tuple[int, dict]:
    """One locked run: returns the exit code and this run's status fields."""
    source_url = f"s3://{config['bucket']}/{config['prefix']}"
    dest = config["destination"]
    source = list_source(config)
    destination = list_destination(dest)
    counts = {"source_objects": len(source), "destination_files": len(destination)}
    planned: list[str] = []
    if config["delete"]:
        planned = plan_deletions(source, destination)
        reason = guard_reason(len(source), len(destination), len(planned), config["max_delete_share"], source_url)
        if reason:
            logger.error("sync %s -> %s refused: %s", source_url, dest, reason)
            return EXIT_REFUSED, {**counts, "result": "refused", "reason": reason, "copied": 0, "deleted": 0}
    elif not source:
        logger.warning("source %s lists no objects; nothing to copy (check the bucket and prefix)", source_url)
    args = ["s3", "sync", source_url, dest, "--no-progress", *config["extra_args"]]
    copied = count_sync_output(run_aws(config, args).stdout)
    deleted = delete_files(dest, planned)
    logger.info(
        "sync %s -> %s done: %d copied, %d deleted (%d source objects, %d destination files before)",
        source_url,
        dest,
        copied,
        deleted,
        len(source),
        len(destination),
    )
    return EXIT_OK, {**counts, "result": "ok", "copied": copied, "deleted": deleted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-efs-sync", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--config", required=True, help="the job's JSON settings (written by the role)")
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as handle:
            config = load_config(handle.read())
    except (OSError, SyncError) as exc:
        print(f"mlops-efs-sync: {args.config}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    logger = setup_logging(config)
    lock = take_lock(config["lock_file"])
    if lock is None:
        logger.warning(
            "another run of %s holds %s (pid %s): this run does nothing",
            config["name"],
            config["lock_file"],
            lock_holder(config["lock_file"]),
        )
        return EXIT_LOCKED
    started = time.monotonic()
    run = {"name": config["name"], "last_run_at": utcnow(), "source": f"s3://{config['bucket']}/{config['prefix']}"}
    run["destination"] = config["destination"]
    try:
        code, fields = sync_once(config, logger)
    except SyncError as exc:
        logger.error("sync failed: %s", exc)
        code, fields = EXIT_FAILED, {"result": "failed", "reason": str(exc), "copied": 0, "deleted": 0}
    run.update(fields, duration_seconds=round(time.monotonic() - started, 3))
    write_status(config["status_file"], merge_status(read_status(config["status_file"]), run))
    lock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())

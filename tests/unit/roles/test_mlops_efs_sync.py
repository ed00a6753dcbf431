"""The bastion_efs_sync job script: its pure decisions, its config, its lock and its status file.

The runs against S3 (copy, second run, guarded deletes, concurrent runs) are in
tests/integration/test_efs_sync_script.py and the role's molecule scenario.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "bastion_efs_sync" / "files" / "mlops_efs_sync.py"
_spec = importlib.util.spec_from_file_location("mlops_efs_sync", SCRIPT)
sync = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", ""), ("models", "models/"), ("/models/", "models/"), ("a/b", "a/b/"), ("  a/  ", "a/")],
)
def test_normalize_prefix(prefix, expected):
    assert sync.normalize_prefix(prefix) == expected


def test_relative_keys_maps_like_s3_sync_and_drops_folder_markers():
    keys = ["models/", "models/a.bin", "models/v2/b.bin", "models/v2/", "modelsX/c.bin", "other/d.bin"]
    assert sync.relative_keys(keys, "models") == {"a.bin", "v2/b.bin"}
    assert sync.relative_keys(keys, "") == {"models/a.bin", "models/v2/b.bin", "modelsX/c.bin", "other/d.bin"}
    assert sync.relative_keys([], "models") == set()


def test_plan_deletions_is_destination_minus_source_sorted():
    assert sync.plan_deletions({"a", "b/c"}, {"a", "b/c", "z", "b/old"}) == ["b/old", "z"]
    assert sync.plan_deletions({"a"}, set()) == []


URL = "s3://weights/models/"


@pytest.mark.parametrize(
    ("source", "dest", "deletions", "share", "needle"),
    [
        (0, 10, 10, 0.10, "lists no objects"),  # wrong/empty prefix
        (0, 0, 0, 0.10, "lists no objects"),  # empty everywhere: still refused, deletes nothing anyway
        (10, 10, 2, 0.10, "2 of 10 destination files (20%)"),  # above the share
        (10, 3, 1, 0.10, "1 of 3"),
        (10, 10, 10, 0.5, "above the limit of 50%"),
    ],
)
def test_guard_refuses(source, dest, deletions, share, needle):
    reason = sync.guard_reason(source, dest, deletions, share, URL)
    assert reason is not None
    assert needle in reason


@pytest.mark.parametrize(
    ("source", "dest", "deletions", "share"),
    [
        (10, 10, 1, 0.10),  # exactly at the share: allowed
        (10, 0, 0, 0.10),  # first sync into an empty directory
        (10, 20, 0, 0.0),  # nothing to delete with a zero share
        (5, 100, 100, 1.0),  # the operator allowed everything
    ],
)
def test_guard_allows(source, dest, deletions, share):
    assert sync.guard_reason(source, dest, deletions, share, URL) is None


def test_count_sync_output_counts_downloads_only():
    out = (
        "download: s3://weights/models/a.bin to ../mnt/models/a.bin\n"
        "download: s3://weights/models/v 2/b c.bin to ../mnt/models/v 2/b c.bin\n"
        "warning: Skipping file /x. File does not exist.\n"
        "delete: ../mnt/models/old.bin\n"
    )
    assert sync.count_sync_output(out) == 2
    assert sync.count_sync_output("") == 0


BASE = {
    "name": "models",
    "bucket": "weights",
    "destination": "/mnt/efs/models",
    "status_file": "/var/lib/mlops-efs-sync/models.json",
    "lock_file": "/run/lock/mlops-efs-sync-models.lock",
    "log_file": "/var/log/mlops-efs-sync/models.log",
    "aws_command": "/opt/mlops/efs-sync/bin/aws",
}


def test_load_config_fills_defaults_and_normalizes():
    config = sync.load_config(json.dumps({**BASE, "prefix": "/models"}))
    assert config["prefix"] == "models/"
    assert config["aws_command"] == ["/opt/mlops/efs-sync/bin/aws"]
    assert config["delete"] is False
    assert config["max_delete_share"] == 0.10


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        (json.dumps({k: v for k, v in BASE.items() if k != "bucket"}), "lacks bucket"),
        (json.dumps({**BASE, "max_delete_share": 1.5}), "between 0 and 1"),
        (json.dumps({**BASE, "max_delete_share": "10%"}), "between 0 and 1"),
        (json.dumps({**BASE, "max_delete_share": True}), "between 0 and 1"),
    ],
)
def test_load_config_rejects(text, needle):
    with pytest.raises(sync.SyncError, match=needle):
        sync.load_config(text)


def test_merge_status_keeps_last_success_through_failures():
    first = sync.merge_status({}, {"last_run_at": "T1", "result": "ok", "copied": 3})
    assert first["last_success_at"] == "T1"
    refused = sync.merge_status(first, {"last_run_at": "T2", "result": "refused", "reason": "empty"})
    assert refused["last_success_at"] == "T1"
    assert refused["result"] == "refused"
    assert refused["reason"] == "empty"
    again = sync.merge_status(refused, {"last_run_at": "T3", "result": "ok", "copied": 0})
    assert again["last_success_at"] == "T3"
    assert "reason" not in again


def test_write_status_is_atomic_json(tmp_path):
    path = tmp_path / "state" / "models.json"
    sync.write_status(str(path), {"result": "ok", "copied": 1})
    assert json.loads(path.read_text()) == {"result": "ok", "copied": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["models.json"]
    assert sync.read_status(str(path)) == {"result": "ok", "copied": 1}
    path.write_text("{broken")
    assert sync.read_status(str(path)) == {}


def test_delete_files_stays_inside_the_destination(tmp_path):
    root = tmp_path / "dest"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "old.bin").write_text("x")
    outside = tmp_path / "keep.bin"
    outside.write_text("keep")
    assert sync.delete_files(str(root), ["sub/old.bin", "gone.bin"]) == 1
    assert not (root / "sub" / "old.bin").exists()
    with pytest.raises(sync.SyncError, match="outside the destination"):
        sync.delete_files(str(root), ["../keep.bin"])
    assert outside.read_text() == "keep"


def test_list_destination_requires_a_directory(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.bin").write_text("1")
    (tmp_path / "c.bin").write_text("2")
    assert sync.list_destination(str(tmp_path)) == {"a/b.bin", "c.bin"}
    with pytest.raises(sync.SyncError, match="not a directory"):
        sync.list_destination(str(tmp_path / "missing"))


def test_a_held_lock_makes_the_run_do_nothing(tmp_path, capsys):
    """Another process's flock on the lock file: exit 75, no status file, a log line why."""
    config = {
        **BASE,
        "destination": str(tmp_path / "dest"),
        "status_file": str(tmp_path / "status.json"),
        "lock_file": str(tmp_path / "lock"),
        "log_file": str(tmp_path / "log" / "models.log"),
        "aws_command": "/nonexistent/aws",
        "syslog": False,
    }
    path = tmp_path / "models.json"
    path.write_text(json.dumps(config))
    with open(tmp_path / "lock", "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write("4242\n")
        holder.flush()
        assert sync.main(["--config", str(path)]) == sync.EXIT_LOCKED
    assert not (tmp_path / "status.json").exists()
    assert "holds" in (tmp_path / "log" / "models.log").read_text()
    assert "pid 4242" in capsys.readouterr().err


def test_a_failing_aws_cli_is_a_failed_run_with_status(tmp_path):
    config = {
        **BASE,
        "destination": str(tmp_path),
        "status_file": str(tmp_path / "status.json"),
        "lock_file": str(tmp_path / "lock"),
        "log_file": str(tmp_path / "models.log"),
        "aws_command": ["/nonexistent/aws"],
        "syslog": False,
    }
    path = tmp_path / "models.json"
    path.write_text(json.dumps(config))
    assert sync.main(["--config", str(path)]) == sync.EXIT_FAILED
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["result"] == "failed"
    assert "cannot run the AWS CLI" in status["reason"]
    assert "last_success_at" not in status


def test_a_bad_config_file_fails_clearly(tmp_path, capsys):
    path = tmp_path / "models.json"
    path.write_text("{}")
    assert sync.main(["--config", str(path)]) == sync.EXIT_FAILED
    assert "lacks name, bucket" in capsys.readouterr().err

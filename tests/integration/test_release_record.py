"""release_record and release_record_info against moto's SSM Parameter Store, through
real ansible-playbook runs (the assertions live in the playbooks under targets/release_record)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

from .conftest import assert_play_ok


def unique(prefix: str) -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def test_record_quartet_rollback_target_lookups_and_env_listing(playbook):
    assert_play_ok(playbook.run("release_record/record.yml", {"rec_env": unique("rec")}))


def test_long_history_is_paginated_and_windowed(playbook, aws):
    """60 versions: GetParameterHistory answers 50 at most per page."""
    ssm = aws("ssm")
    name = "/mlops/%s/releases/titanic" % unique("hist")
    middle = None
    for number in range(1, 61):
        value = {
            "release_id": "r-%d" % number,
            "bundle": "s3://mlops-releases/releases/hist/r-%d.zip" % number,
            "bundle_sha256": None,
            "manifest_sha256": None,
            "digests": {},
            "result": "success",
            "extra": {},
            "deployed_by": "ci",
            "deployed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        ssm.put_parameter(Name=name, Type="String", Overwrite=True, Value=json.dumps(value))
        if number == 30:
            # A millisecond after version 30 was stored, and before version 31 is (moto
            # stores times in milliseconds, from this machine's clock).
            stored = ssm.get_parameter(Name=name)["Parameter"]["LastModifiedDate"]
            middle_ms = int(stored.timestamp() * 1000) + 1
            while time.time() * 1000 <= middle_ms + 1:
                pass  # at most two milliseconds: version 31 is stored after the middle
            moment = datetime.fromtimestamp(middle_ms / 1000, UTC)
            middle = moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (middle_ms % 1000)
    assert ssm.get_parameter_history(Name=name, MaxResults=50).get("NextToken")  # really two pages
    assert_play_ok(playbook.run("release_record/history.yml", {"name": name, "middle": middle}))


def test_bad_inputs_fail_clearly_and_write_nothing(playbook, aws):
    rec_env = unique("bad")
    ssm = aws("ssm")
    ssm.put_parameter(
        Name="/mlops/%s/releases/titanic" % rec_env,
        Type="String",
        Value=json.dumps({"release_id": "r-1", "result": "success", "digests": {}, "extra": {}}),
    )
    assert_play_ok(playbook.run("release_record/bad_input.yml", {"rec_env": rec_env}))

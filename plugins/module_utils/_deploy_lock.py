# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A per-environment deploy lock held in one SSM parameter.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``deploy_lock``.

Taking the lock is ``PutParameter(Overwrite=False)``: SSM creates the parameter for
exactly one of several callers and answers ``ParameterAlreadyExists`` to the others,
so two CI runs never both hold it. Releasing deletes the parameter. The value is JSON
``{owner, run_id, release, acquired_at, expires_at}``; a lock past ``expires_at`` is
stale (its run probably died) and is reported with its owner, never broken silently.
"""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

from ansible_collections.mlops.deploy.plugins.module_utils._ssm_parameters import (
    ParameterError,
    check_name_part,
    check_parameter_name,
    human_age,
    iso_utc,
    parse_iso,
    utcnow,
)

DESCRIPTION = "mlops.deploy deploy lock (delete it only if its run is gone; see deploy_lock force_unlock)"
FIRST_DELAY = 0.5  # seconds before the first re-read of a held lock
DELAY_GROWTH = 1.6


class LockHeld(ParameterError):
    """The lock is someone else's; ``lock`` describes the holder."""

    def __init__(self, message: str, lock: dict):
        super().__init__(message)
        self.lock = lock


def lock_name(env: str | None = None, name: str | None = None, prefix: str = "/mlops") -> str:
    """``/mlops/<env>/deploy-lock``, or ``name`` as given."""
    if name:
        return check_parameter_name(name)
    return check_parameter_name("%s/%s/deploy-lock" % (prefix.rstrip("/"), check_name_part(env, "env")))


def new_lock(owner: str, run_id: str, release: str | None, ttl: int, now) -> dict:
    return {
        "owner": owner,
        "run_id": run_id,
        "release": release,
        "acquired_at": iso_utc(now),
        "expires_at": iso_utc(now + timedelta(seconds=ttl)),
    }


def encode(lock: dict) -> str:
    return json.dumps(lock, sort_keys=True, separators=(",", ":"))


def describe(name: str, value: str | None, version=None, last_modified=None, now=None, run_id=None) -> dict:
    """What a lock parameter says, as returned to the user.

    ``value`` not being a lock (other JSON, plain text) is kept in ``raw``: the lock is
    then held by an unknown owner, which only ``force_unlock`` clears.
    """
    now = now or utcnow()
    try:
        data = json.loads(value) if value else None
    except ValueError:
        data = None
    valid = isinstance(data, dict) and bool(data.get("run_id"))
    data = data if valid else {}
    acquired = parse_iso(data.get("acquired_at")) or parse_iso(last_modified)
    expires = parse_iso(data.get("expires_at"))
    info = {
        "name": name,
        "owner": data.get("owner"),
        "run_id": data.get("run_id"),
        "release": data.get("release"),
        "acquired_at": iso_utc(acquired) if acquired else None,
        "expires_at": iso_utc(expires) if expires else None,
        "age_seconds": int((now - acquired).total_seconds()) if acquired else None,
        "stale": bool(expires and now >= expires),
        "ours": bool(valid and run_id and data.get("run_id") == run_id),
        "version": version,
    }
    if not valid:
        info["raw"] = value
    return info


def holder_text(info: dict, now=None) -> str:
    """``alice@ci-7 (run 1234, release r-42) since 2026-11-21T10:00:00Z (5m 12s ago)``."""
    if info.get("raw") is not None or not info.get("run_id"):
        text = "an unknown holder (the parameter holds %r, not a deploy lock)" % ((info.get("raw") or "")[:200],)
    else:
        text = "%s (run %s, release %s)" % (info.get("owner") or "an unnamed owner", info["run_id"], info["release"])
    if info.get("acquired_at"):
        text += " since %s (%s ago)" % (info["acquired_at"], human_age(info.get("age_seconds") or 0))
    return text


def next_delay(attempt: int, cap: float, rand=random.random) -> float:
    """Jittered, growing pause between two reads of a held lock: between half and all of
    ``FIRST_DELAY * DELAY_GROWTH ** attempt``, capped at ``cap``, so waiters spread out."""
    ceiling = min(cap, FIRST_DELAY * DELAY_GROWTH**attempt)
    return max(0.05, ceiling * (0.5 + 0.5 * rand()))


class DeployLock:
    """Take or release the lock in ``name`` through a ParameterStore."""

    def __init__(self, store, name: str, clock=time.monotonic, sleep=time.sleep, now=utcnow, rand=random.random):
        self.store = store
        self.name = name
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.rand = rand
        self.waited = 0.0

    def read(self, run_id: str | None = None) -> dict | None:
        current = self.store.get(self.name)
        if current is None:
            return None
        return describe(
            self.name, current["value"], current["version"], current["last_modified"], self.now(), run_id=run_id
        )

    def acquire(
        self,
        owner: str,
        run_id: str,
        release: str | None = None,
        ttl: int = 3600,
        wait: float = 0,
        poll_interval: float = 5.0,
        force: bool = False,
        check_mode: bool = False,
    ) -> dict:
        """Take the lock; a result dict, or LockHeld when someone else keeps it."""
        started = self.clock()
        deadline = started + max(0.0, wait)
        self.waited = 0.0
        attempt = lost_races = 0
        while True:
            holder = self.read(run_id)
            mine = new_lock(owner, run_id, release, ttl, self.now())
            if holder is None:
                if check_mode:
                    return self._result(True, mine, msg="would take the lock %s" % self.name)
                version = self.store.create(self.name, encode(mine), DESCRIPTION)
                if version is not None:
                    return self._result(True, mine, version, msg="took the lock %s" % self.name)
                lost_races += 1
                if lost_races > 5:
                    raise ParameterError(
                        "SSM says %s exists (ParameterAlreadyExists) but GetParameter does not find it; "
                        "check the parameter and the permissions on it" % self.name
                    )
                continue  # another run created it between the read and the create: read who
            if holder["ours"]:
                return self._result(
                    False, holder, msg="the lock %s is already held by this run (%s)" % (self.name, run_id)
                )
            if force:
                verb = "would break" if check_mode else "broke"
                version = None if check_mode else self.store.put(self.name, encode(mine), DESCRIPTION)
                return self._result(
                    True,
                    mine,
                    version,
                    broken=holder,
                    msg="%s the deploy lock %s of %s%s and took it for run %s"
                    % (verb, self.name, holder_text(holder), ", stale" if holder["stale"] else "", run_id),
                )
            if holder["stale"]:
                raise LockHeld(
                    "deploy lock %s is stale: held by %s, expired at %s (%s ago). If that run is gone, break "
                    "the lock with force_unlock=true"
                    % (
                        self.name,
                        holder_text(holder),
                        holder["expires_at"],
                        human_age((self.now() - parse_iso(holder["expires_at"])).total_seconds()),
                    ),
                    holder,
                )
            remaining = deadline - self.clock()
            if remaining <= 0 or check_mode:
                waited = self.clock() - started
                raise LockHeld(
                    "deploy lock %s is held by %s%s%s. Let that run finish (or queue behind it with a longer "
                    "wait); if it died, break the lock with force_unlock=true"
                    % (
                        self.name,
                        holder_text(holder),
                        ", expires at %s" % holder["expires_at"] if holder["expires_at"] else "",
                        "; waited %ds" % round(waited) if wait > 0 and not check_mode else "",
                    ),
                    holder,
                )
            pause = min(next_delay(attempt, poll_interval, self.rand), remaining)
            self.sleep(pause)
            self.waited += pause
            attempt += 1

    def release(self, run_id: str | None, force: bool = False, check_mode: bool = False) -> dict:
        """Release the lock if it is this run's (or with ``force``); never fails on a held one."""
        holder = self.read(run_id)
        if holder is None:
            return {"changed": False, "released": False, "lock": None, "msg": "the lock %s is free" % self.name}
        if holder["ours"] or force:
            if not check_mode:
                self.store.delete(self.name)
            verb = "would release" if check_mode else "released"
            whose = "this run's" if holder["ours"] else "the"
            return {
                "changed": True,
                "released": True,
                "lock": holder,
                "msg": "%s %s lock %s (held by %s)" % (verb, whose, self.name, holder_text(holder)),
            }
        return {
            "changed": False,
            "released": False,
            "lock": holder,
            "msg": "did not release the lock %s: it is held by %s, not by run %s (force_unlock=true releases it anyway)"
            % (self.name, holder_text(holder), run_id),
        }

    def _result(self, changed, lock, version=None, broken=None, msg=""):
        info = lock if "name" in lock else describe(self.name, encode(lock), version, now=self.now(), run_id=None)
        info["ours"] = True
        return {
            "changed": changed,
            "acquired": True,
            "lock": info,
            "waited": round(self.waited, 3),
            "broken": broken,
            "msg": msg,
        }

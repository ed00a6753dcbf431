# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A health-gated compose deploy: load, plan, pull, up, wait healthy, probe, roll back,
remove orphans, prune, result.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``compose_deploy``.

The docker compose v2 CLI does the work (``pull``, ``up``: ``_compose_cli``); the Docker
engine API is used to look (``_compose_engine``): the project's containers before and
after, image digests, health, logs. What "changed" means comes from comparing what the
engine holds before and after (container IDs, start times, image IDs and digests),
checked against compose's own ``--progress json`` events, never from the mere fact that
a command ran.

``Deployment.run()`` strings the steps together; each step is a method with explicit
inputs and a plain or ``_compose_values`` output, unit-tested on recorded compose and
engine answers. How the new containers replace the old ones (``up``) and how the old
ones come back (``rollback``) is the ``_compose_strategy`` given to the deployment.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ansible_collections.mlops.deploy.plugins.module_utils._compose_cli import ComposeCli
from ansible_collections.mlops.deploy.plugins.module_utils._compose_engine import Engine
from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError, command_result
from ansible_collections.mlops.deploy.plugins.module_utils._compose_events import (
    parse_events,
    pull_outcome,
    summarize_up_events,
)
from ansible_collections.mlops.deploy.plugins.module_utils._compose_health import probe_url, wait_until_healthy
from ansible_collections.mlops.deploy.plugins.module_utils._compose_images import (
    digest_of,
    image_summary,
    pinned_ref,
    plan_prune,
    repo_digest,
    split_image_ref,
    stale_images,
)
from ansible_collections.mlops.deploy.plugins.module_utils._compose_plan import plan_up, up_reasons
from ansible_collections.mlops.deploy.plugins.module_utils._compose_state import (
    diff_snapshots,
    orphans,
    service_networks,
    with_dependencies,
)
from ansible_collections.mlops.deploy.plugins.module_utils._compose_strategy import Recreate, Strategy
from ansible_collections.mlops.deploy.plugins.module_utils._compose_values import (
    DeployOptions,
    Health,
    Project,
    RollbackOutcome,
    UpOutcome,
)

ACTIONS = ("pulled", "created", "recreated", "started", "removed", "rolled_back", "pruned")
# plan_up's action -> the key of RV(actions) it is reported under in check mode
_PLANNED = {"create": "created", "recreate": "recreated", "start": "started", "scale": "created"}


class Deployment:
    """One deploy of one compose project."""

    def __init__(
        self,
        compose: ComposeCli,
        engine: Engine,
        options: DeployOptions,
        check_mode: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        strategy: Strategy | None = None,
    ) -> None:
        self.compose = compose
        self.engine = engine
        self.options = options
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep
        self.strategy = strategy or Recreate()
        self.actions: dict[str, list[dict]] = {key: [] for key in ACTIONS}
        self.commands: list[list[str]] = []
        self._image_cache: dict[str, dict | None] = {}

    # -- the whole -----------------------------------------------------------------

    def run(self) -> dict:
        """The module's result; a DeployError (with the failed result) when the deploy failed."""
        project = self.load()
        before = self.snapshot(project.name)
        orphan_services = orphans(before, project.services) if self.options.remove_orphans else []
        base = {
            "project": project.name,
            "previous_digests": self.previous_digests(before, project.targets),
            "actions": self.actions,
        }
        try:
            if self.check_mode:
                return self._check(project, before, orphan_services, base)
            return self._deploy(project, before, orphan_services, base)
        except DeployError as exc:
            exc.result = dict(base, changed=self.changed(), commands=self.commands, **exc.result)
            raise

    def _deploy(self, project: Project, before: dict, orphan_services: list[str], base: dict) -> dict:
        refs = project.refs
        images = self.pull(refs) if self.options.pull and refs else self.local_images(refs)
        reasons = self.up_reasons(project, before, images, orphan_services)
        base["up_reasons"] = reasons
        if reasons:
            up = self.up(project, before)
            base["compose_events"] = self.record_changes(before, up.after, project.targets, up.events)
            if not up.ok:
                raise self.rollback(project, before, up.after, up.failure()).error()
            health = self.wait_healthy(project.name, project.targets, project.expected)
        else:
            # The release already runs as the file says, healthy: up would change
            # nothing, so it is not run (up_reasons says why it ran when it does).
            health = Health("ok", [], 0.0)
        if not health.ok:
            raise self.rollback(
                project, before, self.snapshot(project.name), self.health_failure(project, health)
            ).error()
        base["health_waited"] = health.waited
        if self.options.probe_url:
            ok, last = self.probe()
            base["probe"] = {"url": self.options.probe_url, "ok": ok, "last": last}
            if not ok:
                raise self.rollback(project, before, self.snapshot(project.name), self.probe_failure(last)).error()
        self.remove_orphans(project.targets, orphan_services)
        self.prune(refs)
        return self.result(base, before, project, grouped=None if reasons else before)

    def _check(self, project: Project, before: dict, orphan_services: list[str], base: dict) -> dict:
        """Check mode: the full plan, nothing pulled, started or removed."""
        refs = project.refs
        local = self.local_images(refs)
        remote = self.would_pull(refs, local) if self.options.pull else {}
        plan = self.plan(project, before, local, remote)
        self.actions["removed"] = [{"service": s, "reason": "orphan"} for s in orphan_services]
        self.prune(refs)
        return self.result(base, before, project, plan=plan)

    # -- load ----------------------------------------------------------------------

    def load(self) -> Project:
        """The project: compose's model and hashes, its name, the services to deploy."""
        _version, model, (hashes, hashes_result) = self.compose.inspect()
        name = self.compose.project or model.get("name")
        if not name:
            raise DeployError("the compose project has no name; set project")
        self.compose.project = name
        services = model.get("services") or {}
        wanted = self.options.services or []
        unknown = sorted(set(wanted) - set(services))
        if unknown:
            raise DeployError(
                "service(s) %s not in the compose file; it defines: %s"
                % (", ".join(unknown), ", ".join(sorted(services)))
            )
        return Project(name, model, sorted(wanted or services), hashes, hashes_result)

    def snapshot(self, project: str) -> dict:
        """The project's containers now (``group_by_service``)."""
        return self.engine.project_containers(project)

    def local_images(self, refs: dict[str, str]) -> dict[str, dict | None]:
        return {service: image_summary(self.engine.image(ref), ref) for service, ref in refs.items()}

    def image_of_id(self, image_id: str, repo: str | None = None) -> dict | None:
        """An image by ID, with its digest in ``repo`` (the same image is looked at
        before and after: cached until the next command)."""
        if image_id not in self._image_cache:
            self._image_cache[image_id] = self.engine.image(image_id)
        inspect = self._image_cache[image_id]
        if not inspect:
            return None
        entry = repo_digest(inspect.get("RepoDigests"), repo) if repo else None
        return {
            "id": inspect["Id"],
            "digest_ref": entry,
            "digest": digest_of(entry),
            "repo_digests": list(inspect.get("RepoDigests") or []),
        }

    def previous_digests(self, before: dict, targets: list[str]) -> dict[str, str]:
        """``{service: digest (or pinned reference, or image ID)}`` of what runs now."""
        previous = {}
        for service in targets:
            containers = before.get(service)
            if not containers:
                continue
            first = containers[0]
            repo = split_image_ref(first["image_ref"])[0] if first["image_ref"] else None
            image = self.image_of_id(first["image_id"], repo)
            previous[service] = (image and (image["digest"] or pinned_ref(image, repo))) or first["image_id"]
        return previous

    def track(self, result: dict) -> dict:
        """Record a command that ran (RV(commands)); what the engine holds may have changed."""
        self.commands.append(result["cmd"])
        self._image_cache.clear()
        return result

    # -- plan (check mode) ---------------------------------------------------------

    def would_pull(self, refs: dict[str, str], local: dict[str, dict | None]) -> dict[str, str | None]:
        """Check mode: the images whose registry digest is not local (nothing is pulled)."""
        remote = stale_images(refs, local, self.engine.registry_digest)
        for service, digest in sorted(remote.items()):
            image = local.get(service)
            self.actions["pulled"].append(
                {
                    "service": service,
                    "image": refs[service],
                    "from": image and (image["digest"] or image["id"]),
                    "to": digest,
                }
            )
        return remote

    def plan(self, project: Project, before: dict, local: dict, remote: dict) -> dict[str, dict]:
        """Check mode: what ``up`` would do per target (RV(plan)), reported as actions."""
        if project.hashes is None:
            result = project.hashes_result
            raise DeployError("docker compose config --hash failed: %s" % result["stderr"].strip(), result)
        plan = plan_up(project.targets, project.services, project.hashes, before, local, remote)
        for service, step in sorted(plan.items()):
            if step["action"] in _PLANNED:
                self.actions[_PLANNED[step["action"]]].append({"service": service, "reason": step["reason"]})
        return plan

    # -- pull ----------------------------------------------------------------------

    def pull(self, refs: dict[str, str]) -> dict[str, dict | None]:
        """Pull the images whose registry digest is not local yet (compose pull for
        those); the local images after. A failed pull stops the deploy, nothing restarted."""
        before = self.local_images(refs)
        stale = stale_images(refs, before, self.engine.registry_digest, tolerate_errors=True)
        if not stale:
            return before
        result = self.track(self.compose.pull(sorted(stale)))
        outcome = pull_outcome(parse_events(result["stderr"]) + parse_events(result["stdout"]))
        after = self.local_images(refs)
        for service in sorted(refs):
            old, new = before.get(service), after.get(service)
            if new and (not old or old["id"] != new["id"]):
                self.actions["pulled"].append(
                    {
                        "service": service,
                        "image": refs[service],
                        "from": old and (old["digest"] or old["id"]),
                        "to": new["digest"] or new["id"],
                    }
                )
        if result["rc"] != 0:
            failures = outcome["errors"] or [{"service": "?", "message": outcome["message"] or result["stderr"][-500:]}]
            raise DeployError(
                "pull failed, nothing was restarted: %s"
                % "; ".join("%s: %s" % (f["service"], f["message"]) for f in failures),
                command_result(result),
            )
        return after

    # -- up ------------------------------------------------------------------------

    def up_reasons(
        self, project: Project, before: dict, images: dict[str, dict | None], orphan_services: list[str]
    ) -> list[str]:
        """Why ``up`` has to run (RV(up_reasons)); empty when the release already runs."""
        services = with_dependencies(project.targets, project.services)
        refs = {s: project.services[s]["image"] for s in services if project.services[s].get("image")}
        images = dict(images, **self.local_images({s: r for s, r in refs.items() if s not in images}))
        names = sorted({name for s in services for name in service_networks(project.model, s)})
        return up_reasons(
            services, project.model, project.hashes, before, images, self.engine.networks(names), orphan_services
        )

    def up(self, project: Project, before: dict) -> UpOutcome:
        """The new containers, the strategy's way."""
        return self.strategy.up(self, project, before)

    def record_changes(self, before: dict, after: dict, targets: list[str], events: list[dict]) -> dict:
        """Actions from the engine's before/after; returns compose's own account of it
        (RV(compose_events))."""
        diff = diff_snapshots(before, after, targets)
        for key in ("created", "recreated", "removed"):
            self.actions[key] = [{"service": s} for s in diff[key]]
        self.actions["started"] = [{"service": s} for s in diff["restarted"]]
        summary = summarize_up_events(events)
        return {k: summary[k] for k in ("created", "recreated", "started", "removed", "running")}

    # -- health --------------------------------------------------------------------

    def wait_healthy(self, project: str, services: list[str], expected: dict[str, int]) -> Health:
        """Wait, at most ``health_timeout``, for the containers of ``services`` to be healthy."""
        verdict, problems, waited = wait_until_healthy(
            lambda: self.snapshot(project),
            services,
            expected,
            self.options.health_timeout,
            clock=self.clock,
            sleep=self.sleep,
        )
        return Health(verdict, problems, waited)

    def health_failure(self, project: Project, health: Health) -> str:
        what = "not healthy within %ss" % self.options.health_timeout if health.verdict == "timeout" else "unhealthy"
        return "deploy of %s %s: %s" % (project.name, what, "; ".join(health.problems))

    def probe(self) -> tuple[bool, str]:
        """GET ``probe_url`` until it answers one of ``probe_status``: ``(ok, last answer)``."""
        return probe_url(
            self.options.probe_url,
            self.options.probe_status,
            self.options.probe_timeout,
            clock=self.clock,
            sleep=self.sleep,
        )

    def probe_failure(self, last: str) -> str:
        return "probe %s did not answer %s within %ss (last: %s)" % (
            self.options.probe_url,
            "/".join(str(s) for s in self.options.probe_status),
            self.options.probe_timeout,
            last,
        )

    def logs(self, grouped: dict, services: list[str]) -> dict[str, list[str]]:
        """The last log lines of each container of ``services``."""
        logs = {}
        for service in services:
            for c in grouped.get(service, []):
                logs[c["name"]] = self.engine.logs(c["id"])
        return logs

    # -- rollback ------------------------------------------------------------------

    def rollback(self, project: Project, before: dict, after: dict, reason: str) -> RollbackOutcome:
        """Put back what ran before, the strategy's way; ``reason`` says what failed.
        Returns what happened (``.error()`` is the DeployError the deploy fails with)."""
        logs = self.logs(after, project.targets)
        return self.strategy.rollback(self, project, before, after, reason, logs)

    # -- after success -------------------------------------------------------------

    def remove_orphans(self, targets: list[str], orphan_services: list[str]) -> None:
        """Containers of services no longer in the file, removed once the deploy is healthy."""
        if not orphan_services:
            return
        result = self.track(self.compose.up(targets, remove_orphans=True))
        if result["rc"] != 0:
            raise DeployError(
                "removing the orphan containers (%s) failed: %s"
                % (", ".join(orphan_services), result["stderr"].strip()),
                command_result(result, "cmd", "rc", "stderr"),
            )
        self.actions["removed"] += [{"service": s, "reason": "orphan"} for s in orphan_services]

    def prune(self, refs: dict[str, str]) -> None:
        """Old images of the project's repositories, beyond ``keep_images`` and unused."""
        if not self.options.prune:
            return
        repos = sorted({split_image_ref(ref)[0] for ref in refs.values()})
        if not repos:
            return
        plan = plan_prune(self.engine.images(), repos, self.engine.images_in_use(), self.options.keep_images)
        for item in plan:
            if not self.check_mode:
                removed = []
                self._image_cache.clear()
                for ref in item["refs"]:
                    error = self.engine.remove_image(ref)
                    if error:  # in use elsewhere, say: kept, and said so in the result
                        item.setdefault("kept", []).append("%s (%s)" % (ref, error))
                    else:
                        removed.append(ref)
                item["refs"] = removed
                if not removed:
                    continue
            self.actions["pruned"].append(item)

    # -- result --------------------------------------------------------------------

    def changed(self) -> bool:
        return any(self.actions[key] for key in self.actions)

    def services_result(self, grouped: dict, targets: list[str], refs: dict[str, str]) -> list[dict]:
        """RV(services): each target's image, digest, containers and health."""
        out = []
        for service in targets:
            containers = grouped.get(service, [])
            first = containers[0] if containers else {}
            ref = refs.get(service)
            repo = split_image_ref(ref)[0] if ref else None
            image = self.image_of_id(first["image_id"], repo) if first else None
            out.append(
                {
                    "name": service,
                    "image": ref,
                    "image_id": first.get("image_id"),
                    "digest": image and image["digest"],
                    "container_id": first.get("id"),
                    "container_ids": [c["id"] for c in containers],
                    "state": first.get("state"),
                    "health": first.get("health") or ("none" if first else None),
                    "started_at": first.get("started_at"),
                }
            )
        return out

    def result(
        self, base: dict, before: dict, project: Project, plan: dict | None = None, grouped: dict | None = None
    ) -> dict:
        """The module's result; ``grouped`` is the project now when known (else looked at)."""
        if grouped is None:
            grouped = before if self.check_mode else self.snapshot(project.name)
        services = self.services_result(grouped, project.targets, project.refs)
        result = dict(base, changed=self.changed(), services=services, commands=self.commands)
        after = {s["name"]: s["digest"] or s["image_id"] for s in services if s["container_id"]}
        if plan is not None:
            result["plan"] = plan
            # What would run: the pulled digest where a pull would bring one.
            after = dict(after, **{p["service"]: p["to"] for p in self.actions["pulled"]})
        result["diff"] = {"before": base["previous_digests"], "after": after}
        return result

# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""compose_deploy's blue/green strategy: the new version beside the old one, behind the
host's reverse proxy, switched to once healthy; the old one drained, then stopped.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

An endpoint is a compose project ``<project>`` whose one proxied service publishes the
endpoint's port. Blue/green runs it as two compose projects, ``<project>-blue`` and
``<project>-green``, each with the service published on 127.0.0.1 at its colour's port
(an override file, ``ports: !override``); the proxy (``_proxy``: HAProxy, installed by
the ec2_host role) listens on the endpoint's port and sends requests to the live colour.
Its endpoint file in conf.d records which colour is live, so that a reboot comes back
to it.

``BlueGreen.run()`` is the whole: ``load`` and ``settings`` (bad input fails here,
before anything changed), ``state`` (the endpoint's file), ``noop`` (the live colour
already runs this release: nothing is touched), then the new colour deployed by a
``_compose_deploy.Deployment`` of its own project (pull, up, health, probe on the
colour's port; on failure ``ColourStrategy.rollback`` removes it: it never received a
request), ``switch`` (or ``open_endpoint`` for a first deploy), ``drain``, ``verify``
(through the proxy; a failure switches back to the old colour, still running),
``stop_old`` and ``prune``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from ansible_collections.mlops.deploy.plugins.module_utils._compose_cli import ComposeCli
from ansible_collections.mlops.deploy.plugins.module_utils._compose_deploy import Deployment
from ansible_collections.mlops.deploy.plugins.module_utils._compose_engine import Engine
from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_health import probe_url
from ansible_collections.mlops.deploy.plugins.module_utils._compose_images import stale_images
from ansible_collections.mlops.deploy.plugins.module_utils._compose_state import orphans
from ansible_collections.mlops.deploy.plugins.module_utils._compose_strategy import Recreate
from ansible_collections.mlops.deploy.plugins.module_utils._compose_values import (
    DeployOptions,
    Project,
    RollbackOutcome,
)
from ansible_collections.mlops.deploy.plugins.module_utils._proxy import (
    COLOURS,
    MasterApi,
    ProxyError,
    RuntimeApi,
    check_health_path,
    default_colour_ports,
    endpoint_file,
    names,
    other,
    port_in_use,
    read_endpoint,
    render_endpoint,
)

LABEL_COLOUR = "io.mlops-deploy.colour"
# How long the proxy may take to see the new colour UP (its checks run every second) and
# to come back after a reload.
SWITCH_TIMEOUT = 30
RELOAD_TIMEOUT = 30


@dataclass
class BlueGreenSettings:
    """The module's ``blue_green`` options (validated by ``settings``)."""

    service: str | None = None
    port: int | None = None
    colour_ports: list[int] | None = None
    health_path: str | None = None
    drain_timeout: int = 30
    keep_old: bool = False
    proxy_config_dir: str = "/etc/mlops-proxy"
    proxy_run_dir: str = "/run/mlops-proxy"
    proxy_container: str = "mlops-proxy"
    proxy_wait: int = 180

    @classmethod
    def from_params(cls, params: dict | None) -> BlueGreenSettings:
        given = {k: v for k, v in (params or {}).items() if v is not None}
        return cls(**{f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given})


@dataclass
class Endpoint:
    """What ``settings`` made of the options and the compose file."""

    project: str
    service: str
    port: int
    target_port: int
    colour_ports: dict[str, int]
    health_path: str
    restart: str | None


# --------------------------------------------------------------------------- pure parts


def published(service_model: dict) -> list[dict]:
    """The service's port entries that publish a host port."""
    return [p for p in service_model.get("ports") or [] if p.get("published")]


def has_healthcheck(service_model: dict, image: dict | None) -> bool | None:
    """Whether the service has a healthcheck: the compose file's (``disable`` or ``NONE``
    turns it off), else the image's ``HEALTHCHECK``; None when only the image could say
    and it is not on the engine."""
    check = service_model.get("healthcheck")
    if check is not None:
        test = check.get("test") or []
        if check.get("disable") or (test and test[0] == "NONE"):
            return False
        if test:
            return True
    if image is None:
        return None
    test = ((image.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def endpoint_of(project: Project, settings: BlueGreenSettings, probe: str | None) -> Endpoint:
    """The endpoint the options and the file describe; a DeployError saying what to fix."""
    services = project.services
    if settings.service:
        if settings.service not in services:
            raise DeployError(
                "blue_green.service %s is not in the compose file; it defines: %s"
                % (settings.service, ", ".join(sorted(services)))
            )
        service = settings.service
    else:
        publishing = sorted(s for s in project.targets if published(services[s]))
        if len(publishing) != 1:
            raise DeployError(
                "blue_green proxies one service and cannot tell which: %s; set blue_green.service"
                % (
                    "no service publishes a port"
                    if not publishing
                    else "services %s publish ports" % ", ".join(publishing)
                )
            )
        service = publishing[0]
    if service not in project.targets:
        raise DeployError("blue_green.service %s is not among the services deployed (services)" % service)
    others = sorted(s for s in project.targets if s != service and published(services[s]))
    if others:
        raise DeployError(
            "service(s) %s publish host ports too: both colours would need them at once; with blue_green only "
            "the proxied service (%s) may publish a port" % (", ".join(others), service)
        )
    ports = published(services[service])
    if len(ports) > 1:
        raise DeployError(
            "service %s publishes %d ports; blue_green proxies one (the endpoint's): keep one in the file"
            % (service, len(ports))
        )
    if not ports and settings.port is None:
        raise DeployError("service %s publishes no port; set blue_green.port (the endpoint's port)" % service)
    target_port = int(ports[0]["target"]) if ports else int(settings.port)
    port = int(settings.port if settings.port is not None else ports[0]["published"])
    if not 1 <= port <= 65535:
        raise DeployError("blue_green.port must be 1 to 65535, not %s" % port)
    if settings.colour_ports:
        if len(settings.colour_ports) != 2 or len(set(settings.colour_ports)) != 2 or port in settings.colour_ports:
            raise DeployError(
                "blue_green.colour_ports must be two different ports, neither the endpoint's %d, not %s"
                % (port, settings.colour_ports)
            )
        if not all(1 <= p <= 65535 for p in settings.colour_ports):
            raise DeployError("blue_green.colour_ports must be 1 to 65535, not %s" % settings.colour_ports)
        colour_ports = dict(zip(COLOURS, settings.colour_ports))  # noqa: B905 - Python 3.8 on hosts
    else:
        colour_ports = default_colour_ports(port)
        if colour_ports is None:
            raise DeployError(
                "port %d leaves no room for the default colour ports (port + 10000, port + 20000); "
                "set blue_green.colour_ports" % port
            )
    if settings.drain_timeout < 0:
        raise DeployError("blue_green.drain_timeout must be 0 or more seconds, not %s" % settings.drain_timeout)
    if settings.proxy_wait < 0:
        raise DeployError("blue_green.proxy_wait must be 0 or more seconds, not %s" % settings.proxy_wait)
    health_path = settings.health_path or (urllib.parse.urlsplit(probe).path if probe else None) or "/health"
    query = urllib.parse.urlsplit(probe).query if probe and not settings.health_path else ""
    try:
        health_path = check_health_path(health_path + ("?" + query if query else ""))
    except ProxyError as exc:
        raise DeployError(exc.msg) from None
    return Endpoint(
        project.name,
        service,
        port,
        target_port,
        colour_ports,
        health_path,
        services[service].get("restart"),
    )


def colour_override(endpoint: Endpoint, colour: str) -> str:
    """The compose override of a colour: the service published on 127.0.0.1 at the colour's
    port only (``!override`` replaces the file's ports), labelled with its colour, and
    restarted at boot when the file gives no restart policy (the live colour must come
    back with the host)."""
    lines = [
        "# mlops.deploy.compose_deploy blue_green: colour %s of %s" % (colour, endpoint.project),
        "services:",
        "  %s:" % json.dumps(endpoint.service),
        "    ports: !override",
        '      - "127.0.0.1:%d:%d"' % (endpoint.colour_ports[colour], endpoint.target_port),
        "    labels:",
        "      %s: %s" % (LABEL_COLOUR, colour),
    ]
    if endpoint.restart in (None, "", "no"):
        lines.append("    restart: unless-stopped")
    return "\n".join(lines) + "\n"


def colour_project(project: str, colour: str) -> str:
    return "%s-%s" % (project, colour)


def proxy_state(endpoint: Endpoint, live: str | None) -> dict:
    """What the endpoint's file records (``_proxy.render_endpoint``)."""
    return {
        "project": endpoint.project,
        "port": endpoint.port,
        "colours": endpoint.colour_ports,
        "live": live,
        "health_path": endpoint.health_path,
    }


def runtime_agrees(servers: dict, live: str) -> bool:
    """Whether the running proxy sends traffic to ``live`` only, as its file says."""
    mine, theirs = servers.get(live), servers.get(other(live))
    if not mine or not theirs:
        return False
    return mine["status"].split(" ")[0] not in ("MAINT", "DRAIN") and theirs["status"].startswith("MAINT")


# --------------------------------------------------------------------------- the deploy


class ColourStrategy(Recreate):
    """``up`` as compose does it, in the colour's own project; ``rollback`` removes the
    new colour's containers: they never received a request, and the live colour was never
    touched, so there is nothing else to put back."""

    name = "blue_green"

    def rollback(self, deployment, project, before, after, reason, logs):
        base = {"logs": logs}
        if not deployment.options.rollback:
            return RollbackOutcome(
                "%s; the new version (%s) never received traffic; rollback=false, its containers were left as they are"
                % (reason, project.name),
                base,
            )
        result = deployment.track(deployment.compose.remove(project.targets))
        deployment.actions["removed"] += [
            {"service": s, "reason": "failed, never switched to"} for s in project.targets
        ]
        log_text = "\n".join(
            "--- last %d log lines of %s:\n%s" % (len(lines), name, "\n".join(lines))
            for name, lines in sorted(logs.items())
        )
        removed = "its containers were removed" if result["rc"] == 0 else "removing it failed: %s" % result["stderr"]
        return RollbackOutcome(
            "%s; the new version (%s) never received traffic and %s; the live version keeps serving.\n%s"
            % (reason, project.name, removed, log_text),
            base,
            healthy=None,
        )


class BlueGreen:
    """One blue/green deploy of an endpoint; ``run()`` returns the module's result."""

    def __init__(
        self,
        compose: ComposeCli,
        engine: Engine,
        options: DeployOptions,
        settings: BlueGreenSettings,
        workdir: str,
        check_mode: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        runtime: RuntimeApi | None = None,
        master: MasterApi | None = None,
        in_use: Callable[[int], bool] = port_in_use,
    ) -> None:
        self.compose = compose
        self.engine = engine
        self.options = options
        self.settings = settings
        self.workdir = workdir
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep
        self.runtime = runtime or RuntimeApi(
            os.path.join(settings.proxy_run_dir, "admin.sock"), clock=clock, sleep=sleep
        )
        self.master = master or MasterApi(os.path.join(settings.proxy_run_dir, "master.sock"))
        self.in_use = in_use
        self.info: dict = {}
        self.proxy_waited = 0  # seconds waited for a proxy not answering yet
        self.switch_actions: list[dict] = []

    # -- the whole -----------------------------------------------------------------

    def run(self) -> dict:
        loader = Deployment(self.compose, self.engine, self.options, check_mode=True)
        project = loader.load()
        endpoint = endpoint_of(project, self.settings, self.options.probe_url)
        state = self.state(endpoint)
        servers = self.proxy_servers(endpoint, state)
        live = state["live"] if state else None
        new = other(live) if live else COLOURS[0]
        self.info = {
            "live": live,
            "previous": live,
            "colour": new,
            "port": endpoint.port,
            "colour_ports": endpoint.colour_ports,
            "projects": {c: colour_project(endpoint.project, c) for c in COLOURS},
            "proxy_file": endpoint_file(self.settings.proxy_config_dir, endpoint.project),
            "switched": False,
        }
        if self.proxy_waited:
            self.info["proxy_waited"] = self.proxy_waited
        same_endpoint = bool(state) and proxy_state(endpoint, live) == dict(state, live=live)
        if live and same_endpoint:
            result = self.noop(project, endpoint, live, servers)
            if result is not None:
                return result
        migrate = self.check_ports(endpoint, state, new)
        deployment = self.colour_deployment(endpoint, new, self.check_mode)
        if self.check_mode:
            result = deployment.run()
            self.info["would_switch"] = {"from": live, "to": new}
            return self.finish(result, changed=True)
        self.check_healthcheck(deployment, project.services[endpoint.service], endpoint.service)
        try:
            result = deployment.run()
        except DeployError as exc:
            exc.result = self.with_info(exc.result)
            raise
        if state is None or state.get("port") != endpoint.port or migrate:
            self.open_endpoint(endpoint, new, before_reload=lambda: migrate and self.retire_recreate(endpoint, migrate))
        else:
            self.switch(endpoint, live, new)
            self.drain(endpoint, live)
        self.verify(endpoint, live, new, deployment)
        if live and not self.settings.keep_old:
            self.stop_colour(endpoint, live)
        deployment.options = dataclasses.replace(deployment.options, prune=self.options.prune)
        deployment.prune(project.refs)
        return self.finish(result, changed=True)

    # -- bad input and the state ---------------------------------------------------

    def state(self, endpoint: Endpoint) -> dict | None:
        path = endpoint_file(self.settings.proxy_config_dir, endpoint.project)
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DeployError("cannot read the proxy's endpoint file %s: %s" % (path, exc)) from None
        state = read_endpoint(text)
        if state is None:
            raise DeployError(
                "%s was not written by compose_deploy (no state line): it is not this module's endpoint file; "
                "move it away or choose another project name" % path
            )
        return state

    def proxy_servers(self, endpoint: Endpoint, state: dict | None) -> dict:
        """The endpoint's servers on the running proxy (also: the proxy answers at all).

        A proxy that does not answer yet (a host just booted: its unit loads the proxy's
        image first) is waited for, up to ``proxy_wait`` seconds; one that refuses is not.
        """
        start = self.clock()
        while True:
            try:
                rows_servers = self.runtime.servers(names(endpoint.project)["backend"])
                break
            except ProxyError as exc:
                waited = self.clock() - start
                if not exc.absent or waited >= self.settings.proxy_wait:
                    after = " (waited %ds for it)" % round(waited) if exc.absent and waited else ""
                    raise DeployError(
                        "blue_green needs the host's proxy: %s%s. Nothing was changed." % (exc.msg, after)
                    ) from None
                self.sleep(1.0)
        self.proxy_waited = round(self.clock() - start, 1) if self.clock() - start >= 1 else 0
        if state and not rows_servers:
            raise DeployError(
                "the proxy has no backend %s although %s exists: it did not load its conf.d files; check them with "
                "`mlops-proxy check` (nothing was changed)"
                % (names(endpoint.project)["backend"], endpoint_file(self.settings.proxy_config_dir, endpoint.project))
            )
        return rows_servers

    def check_ports(self, endpoint: Endpoint, state: dict | None, new: str) -> list[str] | None:
        """The endpoint's port free or the proxy's, the new colour's port free or its own.
        Returns the containers of the project deployed with ``recreate`` that publish the
        endpoint's port (moved to blue/green by this deploy), else None."""
        migrate = None
        if (not state or state.get("port") != endpoint.port) and self.in_use(endpoint.port):
            holders = self.engine.published_ports(endpoint.project).get(endpoint.port)
            if not holders:
                raise DeployError(
                    "port %d is in use by another program (not the proxy, not this project's containers): "
                    "blue_green's proxy must listen there. Free it or choose another port. Nothing was changed."
                    % endpoint.port
                )
            migrate = holders
        port = endpoint.colour_ports[new]
        project = colour_project(endpoint.project, new)
        if self.in_use(port) and port not in self.engine.published_ports(project):
            raise DeployError(
                "port %d (colour %s of %s, on 127.0.0.1) is in use by another program: free it or set "
                "blue_green.colour_ports. Nothing was changed." % (port, new, endpoint.project)
            )
        return migrate

    def check_healthcheck(self, deployment: Deployment, model: dict, service: str) -> None:
        """Blue/green switches on health: a service without a healthcheck would be switched
        to while its model loads. Looked at in the file, else in the image (pulled first)."""
        ref = model.get("image")
        verdict = has_healthcheck(model, self.engine.image(ref) if ref else None)
        if verdict is None and self.options.pull and ref:
            deployment.pull({service: ref})
            verdict = has_healthcheck(model, self.engine.image(ref))
        if not verdict:
            disabled = " (disabled in the compose file)" if model.get("healthcheck") else ""
            raise DeployError(
                "blue_green needs a healthcheck on service %s%s, in the compose file (healthcheck:) or the image "
                "(HEALTHCHECK): without one a container counts as ready as soon as it runs, and traffic would "
                "switch to a model that has not loaded yet. Nothing was started or switched." % (service, disabled)
            )

    # -- the live colour already runs this release ----------------------------------

    def noop(self, project: Project, endpoint: Endpoint, live: str, servers: dict) -> dict | None:
        """The result of a deploy that changes nothing, or None when there is work."""
        deployment = self.colour_deployment(endpoint, live, check_mode=True)
        colour = deployment.load()
        before = deployment.snapshot(colour.name)
        refs = colour.refs
        local = deployment.local_images(refs)
        stale = (
            stale_images(refs, local, self.engine.registry_digest, tolerate_errors=True) if self.options.pull else {}
        )
        orphan_services = orphans(before, colour.services) if self.options.remove_orphans else []
        if stale or deployment.up_reasons(colour, before, local, orphan_services):
            return None
        if not runtime_agrees(servers, live):
            # The release runs, but the proxy does not send to it alone (changed by hand, or a
            # switch interrupted): put it back as its file says.
            self.switch_actions.append({"from": None, "to": live, "reason": "the proxy's state was not its file's"})
            if not self.check_mode:
                self.set_live(endpoint, live)
        base = {
            "project": colour.name,
            "previous_digests": deployment.previous_digests(before, colour.targets),
            "actions": deployment.actions,
            "up_reasons": [],
            "health_waited": 0.0,
        }
        self.info["colour"] = live
        return self.finish(deployment.result(base, before, colour, grouped=before), changed=bool(self.switch_actions))

    # -- deploying a colour --------------------------------------------------------

    def colour_deployment(self, endpoint: Endpoint, colour: str, check_mode: bool) -> Deployment:
        override = os.path.join(self.workdir, "%s.override.yml" % colour)
        with open(override, "w", encoding="utf-8") as fh:
            fh.write(colour_override(endpoint, colour))
        compose = self.compose.derive(self.compose.files + [override], colour_project(endpoint.project, colour))
        probe = "http://127.0.0.1:%d%s" % (endpoint.colour_ports[colour], endpoint.health_path)
        options = dataclasses.replace(self.options, probe_url=probe, prune=False)
        return Deployment(
            compose, self.engine, options, check_mode=check_mode, clock=self.clock, sleep=self.sleep,
            strategy=ColourStrategy(),
        )  # fmt: skip

    # -- the proxy -----------------------------------------------------------------

    def write_state(self, endpoint: Endpoint, live: str | None) -> str | None:
        """Write the endpoint's file; returns what it held before (None: no file)."""
        path = endpoint_file(self.settings.proxy_config_dir, endpoint.project)
        try:
            with open(path, encoding="utf-8") as fh:
                previous = fh.read()
        except FileNotFoundError:
            previous = None
        tmp = os.path.join(os.path.dirname(path), ".%s.tmp" % os.path.basename(path))
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(render_endpoint(proxy_state(endpoint, live)))
            os.replace(tmp, path)
        except OSError as exc:
            raise DeployError(
                "cannot write the proxy's endpoint file %s: %s (does %s exist? the ec2_host role makes it)"
                % (path, exc, os.path.dirname(path)),
                self.with_info({}),
            ) from None
        return previous

    def restore_file(self, endpoint: Endpoint, previous: str | None) -> None:
        path = endpoint_file(self.settings.proxy_config_dir, endpoint.project)
        if previous is None:
            if os.path.exists(path):
                os.unlink(path)
            return
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(previous)

    def open_endpoint(self, endpoint: Endpoint, new: str, before_reload: Callable[[], object] = lambda: None) -> None:
        """A new frontend: the endpoint's file with ``new`` live, checked, and a graceful
        reload (``before_reload`` runs between the check and the reload)."""
        n = names(endpoint.project)
        previous = self.write_state(endpoint, new)
        cfg = self.settings.proxy_config_dir.rstrip("/")
        code, output = self.engine.exec(
            self.settings.proxy_container, ["haproxy", "-c", "-q", "-f", cfg + "/haproxy.cfg", "-f", cfg + "/conf.d"]
        )
        if code != 0:
            self.restore_file(endpoint, previous)
            why = "exit %s" % code if code is not None else "no running container %s" % self.settings.proxy_container
            raise DeployError(
                "the proxy's configuration with endpoint %s does not check (%s): %s; the endpoint file was put back"
                % (endpoint.project, why, output.strip()[-1500:]),
                self.with_info({}),
            )
        before_reload()
        try:
            self.master.reload()
        except ProxyError as exc:
            raise DeployError("reloading the proxy failed: %s" % exc.msg, self.with_info({})) from None
        start = self.clock()
        while True:
            try:
                servers = self.runtime.servers(n["backend"])
            except ProxyError:
                servers = {}  # the new process is taking over its socket
            if servers.get(new, {}).get("up"):
                break
            if self.clock() - start >= RELOAD_TIMEOUT:
                raise DeployError(
                    "after a reload the proxy does not serve endpoint %s with %s UP within %ss (its servers: %s); "
                    "see `docker logs %s`"
                    % (endpoint.project, new, RELOAD_TIMEOUT, servers, self.settings.proxy_container),
                    self.with_info({}),
                )
            self.sleep(0.2)
        self.info.update(live=new, switched=True, reloaded=True)
        self.switch_actions.append({"from": None, "to": new, "reason": "new endpoint on port %d" % endpoint.port})

    def switch(self, endpoint: Endpoint, live: str, new: str) -> None:
        """New colour ready (and UP for HAProxy), then the old one drained, then the file."""
        backend = names(endpoint.project)["backend"]
        try:
            self.runtime.set_state(backend, new, "ready")
            ok, status = self.runtime.wait_up(backend, new, SWITCH_TIMEOUT)
            if not ok:
                self.runtime.set_state(backend, new, "maint")
                self.stop_colour(endpoint, new)
                raise DeployError(
                    "the proxy's own health check of %s (%s) did not pass within %ss (%s): not switched; %s keeps "
                    "serving and %s was stopped" % (new, endpoint.health_path, SWITCH_TIMEOUT, status, live, new),
                    self.with_info({}),
                )
            self.runtime.set_state(backend, live, "drain")
        except ProxyError as exc:
            raise DeployError(
                "switching the proxy from %s to %s failed: %s" % (live, new, exc.msg), self.with_info({})
            ) from None
        self.write_state(endpoint, new)
        self.info.update(live=new, switched=True)
        self.switch_actions.append({"from": live, "to": new})

    def drain(self, endpoint: Endpoint, old: str) -> None:
        backend = names(endpoint.project)["backend"]
        drained, in_flight, waited = self.runtime.wait_drained(backend, old, self.settings.drain_timeout)
        self.info.update(drained=drained, drain_waited=waited, in_flight_when_stopped=in_flight)
        self.runtime.set_state(backend, old, "maint")

    def set_live(self, endpoint: Endpoint, live: str) -> None:
        backend = names(endpoint.project)["backend"]
        self.runtime.set_state(backend, live, "ready")
        self.runtime.set_state(backend, other(live), "maint")

    def verify(self, endpoint: Endpoint, live: str | None, new: str, deployment: Deployment) -> None:
        """The endpoint answers through the proxy; otherwise back to the old colour."""
        url = "http://127.0.0.1:%d%s" % (endpoint.port, endpoint.health_path)
        ok, last = probe_url(
            url, self.options.probe_status, min(self.options.probe_timeout, 30), clock=self.clock, sleep=self.sleep
        )
        self.info["verified"] = {"url": url, "ok": ok, "last": last}
        if ok:
            return
        if live:
            self.set_live(endpoint, live)
            self.write_state(endpoint, live)
            self.info.update(live=live, switched_back=True)
            self.switch_actions.append({"from": new, "to": live, "reason": "the endpoint did not answer"})
        self.stop_colour(endpoint, new)
        raise DeployError(
            "after the switch to %s, %s did not answer %s (last: %s): %s; %s was stopped"
            % (
                new, url, "/".join(str(s) for s in self.options.probe_status), last,
                "switched back to %s, which was still running" % live if live else "nothing served before",
                new,
            ),
            self.with_info({"actions": deployment.actions}),
        )  # fmt: skip

    # -- after the switch ----------------------------------------------------------

    def stop_colour(self, endpoint: Endpoint, colour: str) -> None:
        """Stop (not remove: a rollback starts them again) the containers of a colour."""
        project = colour_project(endpoint.project, colour)
        stopped = []
        for containers in self.engine.project_containers(project).values():
            for c in containers:
                if c["state"] == "running":
                    self.engine.stop(c["id"])
                    stopped.append(c["name"])
        if stopped:
            self.info.setdefault("stopped", []).extend(stopped)

    def retire_recreate(self, endpoint: Endpoint, holders: list[str]) -> None:
        """The project as ``recreate`` deployed it holds the endpoint's port: removed, so
        that the proxy can take the port (the one moment without an answer)."""
        grouped = self.engine.project_containers(endpoint.project)
        for containers in grouped.values():
            for c in containers:
                self.engine.stop(c["id"])
        result = self.compose.call(self.compose.argv("rm", "--force", "--stop"))
        self.info["migrated_from_recreate"] = {"containers": holders, "removed": result["rc"] == 0}

    # -- result --------------------------------------------------------------------

    def with_info(self, result: dict) -> dict:
        return dict(result, blue_green=dict(self.info, switch=self.switch_actions))

    def finish(self, result: dict, changed: bool) -> dict:
        result = dict(result)
        actions = dict(result.get("actions") or {})
        actions["switched"] = self.switch_actions
        actions["stopped"] = [{"container": name} for name in self.info.get("stopped", [])]
        result["actions"] = actions
        result["changed"] = bool(changed or result.get("changed") or any(actions.values()))
        return self.with_info(result)

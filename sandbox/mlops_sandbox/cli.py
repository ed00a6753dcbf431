"""``mlops-sandbox``: bring the local AWS stand-in up or clear it; instances, faults, call counters.

    mlops-sandbox up | down | status
    mlops-sandbox instances add --kind light --count 120 --name scale-test --env test
    mlops-sandbox instances add --kind full --name model-server --env prod --account prod
    mlops-sandbox instances add --kind simulated --count 1000 --name bench \\
        --duration '{"kind": "uniform", "low": 5, "high": 30}' --failure-share 0.02
    mlops-sandbox instances list [--name N] [--env E] [--kind K] [--json]
    mlops-sandbox instances remove --name scale-test
    mlops-sandbox faults show | clear
    mlops-sandbox faults throttle 0.3 [--actions ListCommandInvocations,GetCommandInvocation] [--limit N] [--account ID]
    mlops-sandbox faults offline|online|kill i-0abc... [--on start --after 2]
    mlops-sandbox faults delay 40 [i-0abc...]
    mlops-sandbox calls [--reset] [--account ID]
    mlops-sandbox settings [--connection-lost-after 600] [--latency 0.02-0.08] [--list-lag 2]
    mlops-sandbox image systemd|host|full|light    # built when missing (cached by content); prints its tag
"""

from __future__ import annotations

import argparse
import json
import sys

from . import envfile, listen
from .client import Sandbox, SandboxControlError
from .config import Config
from .fleet import Fleet
from .images import HostImage, InstanceImage, SystemdImage, build_lock, image_exists
from .motoserver import MotoServer
from .process import SandboxError
from .registry import Registry
from .ssm.timing import parse_latency
from .ssmservice import SsmService


def components(config: Config) -> list:
    """Everything the sandbox runs, in start order (stopped in reverse)."""
    parts: list = [MotoServer(config), SsmService(config)]
    # The registry is machine-wide (port 443, /etc/hosts): one sandbox per machine runs it.
    # It comes before the fleet, whose full instances trust its CA.
    if config.registry_enabled:
        parts.append(Registry(config))
    parts.append(Fleet(config))
    return parts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops-sandbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", help="start moto, the SSM service and the default fleet (idempotent)")
    sub.add_parser("down", help="remove every process, container, volume and network of the sandbox")
    sub.add_parser("status", help="what runs")

    inst = sub.add_parser("instances", help="add, list or remove instances").add_subparsers(dest="verb", required=True)
    add = inst.add_parser("add", help="launch instances (EC2 in moto + containers, or simulated)")
    add.add_argument("--kind", choices=["full", "light", "simulated"], default="light")
    add.add_argument("--count", type=int, default=1)
    add.add_argument("--name", required=True, help="the Name tag")
    add.add_argument("--env", default="test", help="the env tag (default: test)")
    add.add_argument("--account", help="its account: a name or id of MLOPS_SANDBOX_ACCOUNTS (default: moto's)")
    add.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="another tag (repeatable)")
    add.add_argument("--duration", help='simulated: seconds, or JSON like {"kind": "uniform", "low": 5, "high": 30}')
    add.add_argument("--failure-share", type=float, default=0.0, help="simulated: share of runs that fail (0..1)")
    add.add_argument("--failure-code", type=int, default=1, help="simulated: exit code of a failed run")
    add.add_argument("--output-lines", type=int, default=0, help="simulated: extra stdout lines per run")
    add.add_argument("--seed", type=int, help="simulated: random seed (reproducible durations and failures)")
    add.add_argument("--no-wait", action="store_true", help="do not wait for container agents to be Online")
    lst = inst.add_parser("list", help="registered instances")
    rem = inst.add_parser("remove", help="terminate instances and remove their containers")
    for p in (lst, rem):
        p.add_argument("--name")
        p.add_argument("--env")
        p.add_argument("--kind", choices=["full", "light", "simulated"])
        p.add_argument("--account", help="a name or id of MLOPS_SANDBOX_ACCOUNTS")
    lst.add_argument("--json", action="store_true")
    rem.add_argument("--id", action="append", dest="ids", metavar="INSTANCE_ID")

    faults = sub.add_parser("faults", help="fault injection").add_subparsers(dest="verb", required=True)
    faults.add_parser("show")
    faults.add_parser("clear", help="stop throttling, delays and armed kills")
    thr = faults.add_parser("throttle", help="answer a share of SSM calls with ThrottlingException (0 stops)")
    thr.add_argument("share", type=float)
    thr.add_argument("--actions", help="comma-separated actions (default: every SSM action)")
    thr.add_argument("--limit", type=int, help="throttle at most this many calls")
    thr.add_argument("--seed", type=int)
    thr.add_argument("--account", help="only this account's calls (default: every account's)")
    for verb, text in (("offline", "the agent stops answering"), ("online", "the agent answers again")):
        p = faults.add_parser(verb, help=text)
        p.add_argument("ids", nargs="+", metavar="INSTANCE_ID")
    kill = faults.add_parser("kill", help="kill instances (every process at once)")
    kill.add_argument("ids", nargs="+", metavar="INSTANCE_ID")
    kill.add_argument("--on", choices=["now", "start"], default="now", help="now, or when the next invocation starts")
    kill.add_argument("--after", type=float, default=0.0, help="with --on start: seconds after the start")
    delay = faults.add_parser("delay", help="delay deliveries (0 stops)")
    delay.add_argument("seconds", type=float)
    delay.add_argument("ids", nargs="*", metavar="INSTANCE_ID", help="default: every instance")

    calls = sub.add_parser("calls", help="SSM API calls per action since the last reset")
    calls.add_argument("--reset", action="store_true")
    calls.add_argument("--account", help="only this account's calls (default: every account's)")

    settings = sub.add_parser("settings", help="show or change the SSM service's timing (AWS's by default)")
    settings.add_argument(
        "--connection-lost-after", type=float, metavar="SECONDS", help="silence of an agent before ConnectionLost"
    )
    settings.add_argument("--latency", metavar="LOW-HIGH", help="seconds added to each SSM call (0 for none)")
    settings.add_argument(
        "--list-lag", type=float, metavar="SECONDS", help="after SendCommand, ListCommandInvocations lists nothing"
    )
    settings.add_argument("--reset", action="store_true", help="back to the service's start-up settings")

    image = sub.add_parser("image", help="build an image when missing (cached by content key); print its tag")
    image.add_argument("which", choices=["systemd", "host", "full", "light"])
    return parser


def _lifecycle(action: str, config: Config) -> None:
    parts = components(config)
    if action == "up":
        # A bad MLOPS_SANDBOX_BIND stops here, before anything starts.
        listen.widened(config.bind)
        for part in parts:
            print(f"sandbox: {part.up()}", flush=True)
        path = envfile.write(config, _image_exports(config))
        print(f"sandbox: up; client settings in {path} (source it: . {path})")
    elif action == "down":
        # Every part goes down even when one cannot (e.g. a network with stale endpoints):
        # the processes are stopped all the same; what was left is said at the end.
        problems = []
        for part in reversed(parts):
            try:
                print(f"sandbox: {part.down()}", flush=True)
            except SandboxError as exc:
                problems.append(str(exc))
                print(f"sandbox: {exc}", flush=True)
        config.env_file.unlink(missing_ok=True)
        if problems:
            raise SandboxError("down left something behind: " + "; ".join(problems))
    else:
        for part in parts:
            print(part.status())


def _image_exports(config: Config) -> dict[str, str]:
    """The systemd image's tag, for molecule scenarios run by hand, once the fleet built it."""
    try:
        tag = SystemdImage(config, log=lambda _msg: None).tag
    except SandboxError:
        return {}
    return {"MLOPS_SANDBOX_SYSTEMD_IMAGE": tag} if image_exists(tag) else {}


def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SandboxError(f"--tag takes KEY=VALUE, got {pair!r}")
        tags[key] = value
    return tags


def _instances(args, sb: Sandbox) -> None:
    if args.verb == "add":
        duration = None
        if args.duration:
            try:
                duration = json.loads(args.duration)
            except ValueError:
                raise SandboxError(f"--duration must be seconds or JSON, got {args.duration!r}") from None
        found = sb.add_instances(
            args.kind,
            args.count,
            args.name,
            args.env,
            _tags(args.tag),
            duration=duration,
            failure_share=args.failure_share,
            failure_code=args.failure_code,
            output_lines=args.output_lines,
            seed=args.seed,
            wait=not args.no_wait,
            account=args.account,
        )
        where = f" in account {found[0]['account']}" if found else ""
        print(f"added {len(found)} {args.kind} instance(s) Name={args.name} env={args.env}{where}")
        for item in found:
            print(f"{item['instance_id']}  {item['ping_status']}")
    elif args.verb == "list":
        found = sb.instances(args.name, args.env, args.kind, args.account)
        if args.json:
            print(json.dumps(found, indent=2))
            return
        for item in found:
            print(
                f"{item['instance_id']}  {item['kind']:9}  {item['account']}  Name={item['name']}  env={item['env']}  "
                f"{item['private_ip']:15}  {item['ping_status']}"
            )
        print(f"{len(found)} instance(s)")
    else:
        removed = sb.remove_instances(args.name, args.env, args.kind, args.ids, args.account)
        print(f"removed {len(removed)} instance(s)")


def _faults(args, sb: Sandbox) -> None:
    if args.verb == "show":
        answer = sb.faults()
    elif args.verb == "clear":
        answer = sb.clear_faults()
    elif args.verb == "throttle":
        actions = [a for a in (args.actions or "").split(",") if a] or None
        answer = sb.throttle(args.share, actions, args.limit, args.seed)
    elif args.verb == "offline":
        answer = {"offline": sb.offline(args.ids)}
    elif args.verb == "online":
        answer = {"online": sb.online(args.ids)}
    elif args.verb == "kill":
        answer = {"killed": sb.kill(args.ids, args.on, args.after)}
    else:
        answer = sb.delay_delivery(args.seconds, args.ids or None)
    print(json.dumps(answer, indent=2))


def _settings(args, sb: Sandbox) -> None:
    if args.reset:
        print(json.dumps(sb.reset_settings(), indent=2))
        return
    changes: dict = {}
    if args.connection_lost_after is not None:
        changes["connection_lost_after"] = args.connection_lost_after
    if args.latency is not None:
        try:
            changes["latency"] = list(parse_latency(args.latency))
        except ValueError as exc:
            raise SandboxError(f"--latency: {exc}") from None
    if args.list_lag is not None:
        changes["list_lag"] = args.list_lag
    print(json.dumps(sb.settings(**changes) if changes else sb.settings(), indent=2))


def _image(which: str, config: Config) -> str:
    log = lambda msg: print(f"sandbox: {msg}", file=sys.stderr, flush=True)  # noqa: E731 - the tag alone on stdout
    if which == "systemd":
        return SystemdImage(config, log).ensure()[0]
    if which == "host":
        host = HostImage(config, log)
        with build_lock(config):
            if not image_exists(host.tag):
                host.build(host.tag)
        return host.tag
    return InstanceImage(config, which, log).ensure()[0]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = Config()
    try:
        if args.action in ("up", "down", "status"):
            _lifecycle(args.action, config)
        elif args.action == "instances":
            _instances(args, Sandbox(config.control_url))
        elif args.action == "faults":
            _faults(args, Sandbox(config.control_url, account=getattr(args, "account", None)))
        elif args.action == "settings":
            _settings(args, Sandbox(config.control_url))
        elif args.action == "image":
            print(_image(args.which, config))
        else:
            sb = Sandbox(config.control_url, account=args.account)
            print(json.dumps(sb.reset_calls() if args.reset else sb.calls(), indent=2))
    except (SandboxError, SandboxControlError) as exc:
        print(f"sandbox: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`magic8 run` / `make run`: the whole system on the embedded default.

Starts a moto server on 127.0.0.1, creates the resources from magic8.resources, then
starts each local component (API front, gateway replay, Kinesis poller, monitor timer,
dashboard) in order, prints where to look, and shows one status line per component
until Ctrl-C or SIGTERM, which stops everything in reverse order within STOP_BUDGET_S
(a component still stopping then is abandoned: its threads are daemons, the emulator a
child process that is terminated, and the process exits). A second Ctrl-C exits at once.
A taken port is named before anything starts.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from magic8.settings import REPO_ROOT, AwsSettings
from magic8_dev.local.context import Component, LocalContext
from magic8_dev.local.moto_server import EmbeddedAws, PortTaken, port_is_free
from magic8_dev.local.provision import provision

STOP_BUDGET_S = 2.5

# Started in this order, stopped in reverse. "module:factory"; factory(ctx_args) -> Component.
COMPONENTS: tuple[str, ...] = (
    "magic8_dev.local.seed_component:SeedMarketComponent",
    # the external predictors of POST /recommend (their URLs go to the API's environment)
    "magic8_dev.local.predictor_standins:PredictorStandInsComponent",
    # before the API: it turns on the history queue path (one SendMessage per batch)
    "magic8_dev.local.sqs_poller:SqsPollerComponent",
    "magic8_dev.local.api_front:ApiFrontComponent",
    # before the ifd poller: it serves the WebSocket API the ifd function pushes signals to
    "magic8_dev.local.monitor_timer:MonitorTimerComponent",
    "magic8_dev.local.kinesis_poller:KinesisPollerComponent",
    "magic8_dev.local.gateway_component:GatewayReplayComponent",
    "magic8_dev.local.dashboard_component:DashboardComponent",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=int(os.environ.get("MAGIC8_API_PORT", "8000")))
    parser.add_argument("--aws-port", type=int, default=int(os.environ.get("MAGIC8_AWS_PORT", "0")))
    parser.add_argument("--api-key", default=os.environ.get("MAGIC8_API_KEY", "local-dev-key"))
    parser.add_argument(
        "--no-demo", action="store_true", help="real-time timers instead of accelerated demo"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after N seconds (0 = until Ctrl-C)"
    )
    parser.add_argument("--status-every", type=float, default=10.0)
    parser.add_argument(
        "--log-file",
        default=str(REPO_ROOT / ".local" / "magic8.log"),
        help="where the functions' JSON logs and EMF metrics go ('' = console)",
    )


def load_component(path: str) -> Component:
    module_name, _, factory = path.partition(":")
    module = importlib.import_module(module_name)
    component: Component = getattr(module, factory)()
    return component


class LocalStack:
    """Programmatic handle on the local stack (used by `make run` and the e2e tests)."""

    def __init__(
        self,
        api_port: int = 8000,
        api_key: str = "local-dev-key",
        aws_port: int | None = None,
        demo: bool = True,
        components: tuple[str, ...] = COMPONENTS,
    ) -> None:
        self.aws = EmbeddedAws(aws_port or None, log_path=Path(REPO_ROOT) / ".local" / "moto.log")
        self.api_port = api_port
        self.api_key = api_key
        self.demo = demo
        self.component_paths = components
        self.components: list[Component] = []
        self.ctx: LocalContext | None = None

    def start(self) -> LocalContext:
        self.aws.start()
        # moto keeps its state in process-wide backends: a stack starts from empty ones
        self.aws.reset()
        resources = provision(AwsSettings())
        os.environ.update(resources.env())
        os.environ["MAGIC8_API_KEY"] = self.api_key
        self.ctx = LocalContext(
            aws=self.aws,
            resources=resources,
            api_port=self.api_port,
            api_key=self.api_key,
            demo=self.demo,
            repo_root=Path(REPO_ROOT),
        )
        for path in self.component_paths:
            component = load_component(path)
            component.start(self.ctx)
            self.components.append(component)
        return self.ctx

    def status_lines(self) -> list[str]:
        lines = [f"  aws       moto server at {self.aws.endpoint_url}"]
        for c in self.components:
            try:
                lines.append(f"  {c.name:<9} {c.status()}")
            except Exception as exc:  # a status line must never take the stack down
                lines.append(f"  {c.name:<9} status error: {exc}")
        return lines

    def stop(self, budget_s: float | None = None) -> list[str]:
        """Stop the components in reverse order; with budget_s (make run), all of them
        within it, returning the names of those that had not finished (abandoned: their
        threads are daemons). Without (tests), each stop is waited for."""
        if self.ctx:
            self.ctx.stop_event.set()
        deadline = time.monotonic() + (budget_s if budget_s is not None else 1e9)
        late: list[str] = []
        for c in reversed(self.components):

            def stop_one(c: Component = c) -> None:
                try:
                    c.stop()
                except Exception as exc:
                    print(f"  {c.name}: stop failed: {exc}", file=sys.stderr)

            t = threading.Thread(target=stop_one, name=f"stop-{c.name}", daemon=True)
            t.start()
            t.join(max(0.05, deadline - time.monotonic()))
            if t.is_alive():
                late.append(c.name)
        self.components.clear()
        self.aws.stop(timeout=0.5 if budget_s is not None else 3.0)
        return late


# third-party loggers that would log request headers (botocore: Authorization, the access
# key id and a session token at DEBUG) stay at WARNING whatever the functions' log level
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug")


def quiet_third_party_loggers() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _divert_logs(path: Path) -> TextIO:
    """Send the handlers' JSON logs and EMF metrics (stdout, as in Lambda) to a file;
    return the console stream for the status lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    console = sys.stdout
    sys.stdout = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the run
    return console


def taken_ports(args: argparse.Namespace) -> list[str]:
    """The ports `make run` needs that something else holds (named before starting)."""
    taken = []
    if not port_is_free(args.port):
        taken.append(f"port {args.port} (API; --port or MAGIC8_API_PORT)")
    if args.aws_port and not port_is_free(args.aws_port):
        taken.append(f"port {args.aws_port} (AWS emulator; --aws-port or MAGIC8_AWS_PORT)")
    return taken


def run(args: argparse.Namespace) -> int:
    quiet_third_party_loggers()
    taken = taken_ports(args)
    if taken:
        print(
            "magic8: cannot start, already in use on 127.0.0.1: "
            + "; ".join(taken)
            + ". Is another `make run` running?",
            file=sys.stderr,
        )
        return 2
    log_path = Path(args.log_file)
    out = _divert_logs(log_path) if args.log_file else sys.stdout

    def say(*lines: str) -> None:
        for line in lines:
            print(line, file=out, flush=True)

    # the usage plan's per-method limits in the local front too (MAGIC8_THROTTLE=off: none)
    os.environ.setdefault("MAGIC8_THROTTLE", "on")
    stack = LocalStack(
        api_port=args.port,
        api_key=args.api_key,
        aws_port=args.aws_port or None,
        demo=not args.no_demo,
    )
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():  # a second Ctrl-C: no more waiting
            os._exit(130)
        stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    say("magic8: starting the local stack (embedded default) ...")
    try:
        ctx = stack.start()
    except PortTaken as exc:
        say(f"magic8: cannot start: {exc}")
        stack.stop(budget_s=1.0)
        return 2
    api_url = ctx.facts.get("api_url", f"http://127.0.0.1:{args.port}")
    say("")
    say(f"  API        {api_url}   (header x-api-key: {args.api_key})")
    for key, label in (("dashboard_url", "Dashboard"), ("ws_url", "WebSocket")):
        if key in ctx.facts:
            say(f"  {label:<10} {ctx.facts[key]}")
    say(f"  AWS        {stack.aws.endpoint_url}  (moto; AWS_ENDPOINT_URL={stack.aws.endpoint_url})")
    say("")
    say("  try:")
    say(
        f"    curl -s -H 'x-api-key: {args.api_key}' -H 'content-type: application/json' \\\n"
        f'      -d \'{{"requests":[{{"strategy":"Butterfly","symbol":"SPX","premium":24.82,'
        f'"predicted_price":5855,"strikes":[5905,5855,5805],"action":"BUY","quantity":1}}],'
        f'"share_market_data":true}}\' \\\n      {api_url}/predict/batch'
    )
    say(
        "",
        f"  Logs       {log_path if args.log_file else 'console'}  (JSON logs + EMF metrics)",
    )
    say("")
    say("  Ctrl-C stops everything.")
    started = time.monotonic()
    next_status = 0.0
    try:
        while not stopping.is_set():
            now = time.monotonic() - started
            if args.duration and now >= args.duration:
                break
            if now >= next_status:
                say(f"[{time.strftime('%H:%M:%S')}] status", *stack.status_lines())
                next_status = now + args.status_every
            stopping.wait(0.2)
    finally:
        say("magic8: stopping ...")
        t0 = time.monotonic()
        late = stack.stop(budget_s=STOP_BUDGET_S)
        took = time.monotonic() - t0
        say(
            f"magic8: stopped in {took:.1f} s"
            + (f" (abandoned: {', '.join(late)})" if late else "")
            + "."
        )
    # Leave now: the servers are closed and the emulator terminated (no listening port stays
    # behind); what is left are worker threads (a history write, a component that did not
    # finish: `late`) that the interpreter's exit would wait for (measured: 6.9 s more).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

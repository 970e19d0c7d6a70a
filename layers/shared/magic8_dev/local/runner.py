"""`magic8 run` / `make run`: the whole system on the embedded default.

Starts a moto server on 127.0.0.1, creates the resources from magic8.resources, then
starts each local component (API front, gateway replay, Kinesis poller, monitor timer,
dashboard) in order, prints where to look, and shows one status line per component
until Ctrl-C, which stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from magic8.settings import REPO_ROOT, AwsSettings
from magic8_dev.local.context import Component, LocalContext
from magic8_dev.local.moto_server import EmbeddedAws
from magic8_dev.local.provision import provision

# Started in this order, stopped in reverse. "module:factory"; factory(ctx_args) -> Component.
COMPONENTS: tuple[str, ...] = (
    "magic8_dev.local.seed_component:SeedMarketComponent",
    # the external predictors of POST /recommend (their URLs go to the API's environment)
    "magic8_dev.local.predictor_standins:PredictorStandInsComponent",
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
        self.aws = EmbeddedAws(aws_port or None)
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

    def stop(self) -> None:
        if self.ctx:
            self.ctx.stop_event.set()
        for c in reversed(self.components):
            try:
                c.stop()
            except Exception as exc:
                print(f"  {c.name}: stop failed: {exc}", file=sys.stderr)
        self.components.clear()
        self.aws.stop()


def _divert_logs(path: Path) -> TextIO:
    """Send the handlers' JSON logs and EMF metrics (stdout, as in Lambda) to a file;
    return the console stream for the status lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    console = sys.stdout
    sys.stdout = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the run
    return console


def run(args: argparse.Namespace) -> int:
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
        stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    say("magic8: starting the local stack (embedded default) ...")
    ctx = stack.start()
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
        stack.stop()
        say("magic8: stopped.")
    return 0

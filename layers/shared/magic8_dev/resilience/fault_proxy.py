"""A fault-injecting HTTP proxy in front of the moto server.

boto3 talks to the proxy exactly as it would to AWS (set AWS_ENDPOINT_URL to the proxy);
the proxy forwards to moto unless a rule says to fail the call. Faults are the ones real
AWS produces: DynamoDB ThrottlingException / ProvisionedThroughputExceededException and
500s, Kinesis PutRecords partial failures (ProvisionedThroughputExceededException per
entry; the failed entries are NOT forwarded, so moto stores only what AWS would have),
SNS Publish 500s / throttling. Every decision is counted, so a test can compare what was
injected with what survived.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Literal
from urllib.parse import parse_qs

import requests

from magic8_dev.local.http_thread import ServedHttp

FaultKind = Literal["throttle", "server_error", "partial_failure"]


@dataclass
class FaultRule:
    """Fail `operation` of `service` with probability `rate` (deterministic seed)."""

    service: Literal["dynamodb", "kinesis", "sns", "sqs"]
    operation: str  # e.g. "GetItem", "BatchGetItem", "PutRecords", "Publish", "*"
    kind: FaultKind
    rate: float = 1.0
    remaining: int | None = None  # stop after this many injections (None = unlimited)

    def matches(self, service: str, operation: str) -> bool:
        return self.service == service and self.operation in ("*", operation)


@dataclass
class FaultStats:
    forwarded: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    failed_entries: int = 0  # PutRecords entries failed individually


_THROTTLE_CODES = {
    "dynamodb": ("ThrottlingException", "com.amazonaws.dynamodb.v20120810#ThrottlingException"),
    "kinesis": (
        "ProvisionedThroughputExceededException",
        "ProvisionedThroughputExceededException",
    ),
}


def _identify(headers: dict[str, str], body: bytes) -> tuple[str, str]:
    """(service, operation) of an AWS request as boto3 sends it to a custom endpoint."""
    target = headers.get("x-amz-target", "")
    if target.startswith("DynamoDB_"):
        return "dynamodb", target.split(".", 1)[1]
    if target.startswith("Kinesis_"):
        return "kinesis", target.split(".", 1)[1]
    if target.startswith("AmazonSQS"):
        return "sqs", target.split(".", 1)[1]
    auth = headers.get("authorization", "")
    service = ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            service = scope[3]
    operation = ""
    ctype = headers.get("content-type", "")
    if "x-www-form-urlencoded" in ctype:
        operation = parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
    return service, operation


class FaultProxy:
    def __init__(self, upstream: str, seed: int = 7) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[FaultRule] = []
        self.stats = FaultStats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, out_headers, out_body = proxy.handle(self.command, self.path, headers, body)
                self.send_response(status)
                for k, v in out_headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(out_body)))
                self.end_headers()
                self.wfile.write(out_body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._http = ServedHttp(Handler, "fault-proxy")

    @property
    def endpoint_url(self) -> str:
        return self._http.base_url

    def start(self) -> FaultProxy:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    # -- core -----------------------------------------------------------------------------
    def _pick(self, service: str, operation: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(service, operation):
                    continue
                if rule.remaining is not None and rule.remaining <= 0:
                    continue
                if self._rng.random() < rule.rate:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        service, operation = _identify(headers, body)
        key = f"{service}:{operation}"
        rule = self._pick(service, operation)
        if rule is not None and rule.kind == "partial_failure" and key == "kinesis:PutRecords":
            return self._partial_put_records(method, path, headers, body, key)
        if rule is not None:
            with self._lock:
                self.stats.injected[key] += 1
            return self._error(service, rule.kind)
        return self._forward(method, path, headers, body, key)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes, key: str
    ) -> tuple[int, dict[str, str], bytes]:
        fwd_headers = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
        resp = self._session.request(
            method, self.upstream + path, data=body, headers=fwd_headers, timeout=30
        )
        with self._lock:
            self.stats.forwarded[key] += 1
        return resp.status_code, dict(resp.headers), resp.content

    def _error(self, service: str, kind: FaultKind) -> tuple[int, dict[str, str], bytes]:
        if service in ("dynamodb", "kinesis"):
            code, typ = _THROTTLE_CODES[service]
            if kind == "server_error":
                code = typ = "InternalFailure" if service == "kinesis" else "InternalServerError"
                status = 500
            else:
                status = 400
            payload = json.dumps({"__type": typ, "message": f"injected {code}"}).encode()
            return status, {"content-type": "application/x-amz-json-1.0"}, payload
        # query-protocol services (SNS): XML error document
        code = "Throttling" if kind == "throttle" else "InternalError"
        status = 400 if kind == "throttle" else 500
        xml = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>injected</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        ).encode()
        return status, {"content-type": "text/xml"}, xml

    def _partial_put_records(
        self, method: str, path: str, headers: dict[str, str], body: bytes, key: str
    ) -> tuple[int, dict[str, str], bytes]:
        """Fail a random subset of entries the way Kinesis does; forward only the rest."""
        request = json.loads(body)
        records = request["Records"]
        failed_idx = {i for i in range(len(records)) if self._rng.random() < 0.3}
        if len(failed_idx) == len(records) and records:
            failed_idx.discard(0)
        kept = [r for i, r in enumerate(records) if i not in failed_idx]
        results: list[dict[str, str]] = []
        if kept:
            fwd = dict(request, Records=kept)
            status, _h, content = self._forward(
                method, path, headers, json.dumps(fwd).encode(), key
            )
            if status != 200:
                return status, _h, content
            upstream_results = iter(json.loads(content)["Records"])
        for i in range(len(records)):
            if i in failed_idx:
                results.append(
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "injected: rate exceeded for shard",
                    }
                )
            else:
                results.append(next(upstream_results))
        with self._lock:
            self.stats.injected[key] += 1
            self.stats.failed_entries += len(failed_idx)
        payload = {"FailedRecordCount": len(failed_idx), "Records": results}
        return 200, {"content-type": "application/x-amz-json-1.1"}, json.dumps(payload).encode()

"""The local API front with a recording handler: the API Gateway event it builds, the API
key check, and how the function's response becomes the HTTP response."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from magic8_dev.local.api_front import ApiFront, apigw_event, response_body


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail = False

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("boom")
        assert context.aws_request_id and context.function_name
        self.events.append(event)
        return {
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-one": "1"},
            "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
            "body": json.dumps({"path": event["path"]}),
            "isBase64Encoded": False,
        }


@pytest.fixture()
def front() -> Iterator[tuple[ApiFront, Recorder]]:
    rec = Recorder()
    f = ApiFront("127.0.0.1", 0, "k3y", rec).start()
    yield f, rec
    f.stop()


def request(
    f: ApiFront, method: str, path: str, body: bytes | None = None, key: str | None = "k3y"
) -> tuple[int, dict[str, str], bytes, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", f.port, timeout=10)
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    out = (resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, resp)
    conn.close()
    return out


def test_request_becomes_an_api_gateway_rest_event(front: tuple[ApiFront, Recorder]) -> None:
    f, rec = front
    status, headers, body, resp = request(f, "POST", "/predict/batch?a=1&a=2&b=x", b'{"x": 1}')
    assert status == 201 and json.loads(body) == {"path": "/predict/batch"}
    assert headers["x-one"] == "1"
    assert resp.headers.get_all("set-cookie") == ["a=1", "b=2"]
    ev = rec.events[0]
    assert ev["httpMethod"] == "POST" and ev["path"] == "/predict/batch"
    assert ev["resource"] == "/{proxy+}" and ev["pathParameters"] == {"proxy": "predict/batch"}
    assert ev["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x"]}
    assert ev["queryStringParameters"] == {"a": "2", "b": "x"}
    assert ev["headers"]["x-api-key"] == "k3y" and ev["body"] == '{"x": 1}'
    assert ev["isBase64Encoded"] is False
    assert ev["requestContext"]["stage"] == "local"
    assert ev["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"


def test_missing_or_wrong_key_is_403_before_the_function(front: tuple[ApiFront, Recorder]) -> None:
    f, rec = front
    for key in (None, "wrong", ""):
        status, _, body, _ = request(f, "POST", "/predict", b"{}", key=key)
        assert status == 403 and json.loads(body) == {"message": "Forbidden"}
    assert rec.events == []
    status, _, _, _ = request(f, "GET", "/health", key=None)  # open for probes
    assert status == 201
    assert f.forbidden == 3


def test_function_crash_is_502(front: tuple[ApiFront, Recorder]) -> None:
    f, rec = front
    rec.fail = True
    status, _, body, _ = request(f, "GET", "/market/SPX")
    assert status == 502 and json.loads(body)["message"] == "Internal server error"


def test_binary_bodies_travel_base64() -> None:
    ev = apigw_event("POST", "/x", b"\xff\xfe\x00")
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == b"\xff\xfe\x00"
    assert response_body({"body": base64.b64encode(b"\x01").decode(), "isBase64Encoded": True}) == (
        b"\x01"
    )


def test_keep_alive_connection_serves_many_requests(front: tuple[ApiFront, Recorder]) -> None:
    f, rec = front
    conn = http.client.HTTPConnection("127.0.0.1", f.port, timeout=10)
    for i in range(20):
        conn.request("GET", f"/market/SPX?i={i}", headers={"x-api-key": "k3y"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201
    conn.close()
    assert len(rec.events) == 20


def test_a_burst_of_50_concurrent_requests_is_queued_not_reset() -> None:
    import threading

    gate = threading.Event()
    rec = Recorder()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        gate.wait(10)  # every client connects while the first invocation holds the function
        return rec(event, context)

    f = ApiFront("127.0.0.1", 0, "k3y", slow).start()
    statuses: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            statuses.append(request(f, "POST", "/predict/batch", b"{}")[0])
        except BaseException as exc:  # ECONNRESET would land here
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(50)]
    try:
        assert f._server.request_queue_size >= 50
        for t in threads:
            t.start()
        gate.set()
        for t in threads:
            t.join(30)
    finally:
        gate.set()
        f.stop()
    assert errors == [] and statuses == [201] * 50 and len(rec.events) == 50


def test_per_method_limits_answer_429_with_retry_after() -> None:
    """The usage plan's per-method limits (100/min /predict, 20/min /predict/batch per key)
    in the local front, on a fake clock."""
    from magic8.api_limits import METHOD_LIMITS
    from magic8_dev.local.api_front import RateLimiter

    now = [0.0]
    limiter = RateLimiter(METHOD_LIMITS, clock=lambda: now[0])
    rec = Recorder()
    f = ApiFront("127.0.0.1", 0, "k3y", rec, limiter).start()
    try:
        for _ in range(20):
            assert request(f, "POST", "/predict/batch", b"{}")[0] == 201
        status, headers, body, _ = request(f, "POST", "/predict/batch", b"{}")
        assert status == 429 and json.loads(body) == {"message": "Too Many Requests"}
        assert headers["retry-after"] == "3"  # 20/min: one token every 3 s
        # another client (key) has its own budget; other methods are not limited by it
        assert limiter.retry_after("other", "POST", "/predict/batch") is None
        assert request(f, "POST", "/predict", b"{}")[0] == 201
        assert request(f, "GET", "/market/SPX")[0] == 201
        now[0] += 3.0  # one token back
        assert request(f, "POST", "/predict/batch", b"{}")[0] == 201
        assert request(f, "POST", "/predict/batch", b"{}")[0] == 429
        for _ in range(100):
            assert limiter.retry_after("fresh", "POST", "/predict") is None
        assert limiter.retry_after("fresh", "POST", "/predict") == 1  # 100/min: 0.6 s -> 1
    finally:
        f.stop()


def test_a_client_that_hangs_up_leaves_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    import socket
    import struct
    import threading

    answered = threading.Event()
    rec = Recorder()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time_out.wait(0.5)  # the client is gone by the time the answer is written
        try:
            return rec(event, context)
        finally:
            answered.set()

    time_out = threading.Event()
    f = ApiFront("127.0.0.1", 0, "k3y", slow).start()
    try:
        for _ in range(3):
            answered.clear()
            s = socket.create_connection(("127.0.0.1", f.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nx-api-key: k3y\r\n\r\n")
            s.close()
            assert answered.wait(10)
        time_out.wait(0.5)  # the failed writes have happened
    finally:
        f.stop()
    err = capsys.readouterr().err
    assert "Traceback" not in err, err


def test_after_response_work_runs_once_the_client_has_its_answer() -> None:
    """A handler carrying magic8.after_response work (as deps.build_handler's does): the
    front sends the response first, then runs the work on its own worker, so the client
    (and its next request on the same connection) never waits for it."""
    from magic8.after_response import AfterResponse

    release = threading.Event()
    ran: list[str] = []
    after = AfterResponse()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        after.defer(lambda: (release.wait(10), ran.append(event["path"])))
        after.invocation_done()
        return {"statusCode": 200, "body": "{}", "headers": {}}

    handler.after_response = after  # type: ignore[attr-defined]
    f = ApiFront("127.0.0.1", 0, "k3y", handler).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", f.port, timeout=10)
        for path in ("/one", "/two"):  # keep-alive: the second is not held by the first's work
            conn.request("POST", path, body=b"{}", headers={"x-api-key": "k3y"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
        assert ran == [] and after.mode == "host"
        release.set()
        conn.close()
    finally:
        f.stop()  # waits for the work left
    assert ran == ["/one", "/two"]

"""The moto server with every request handled under one lock, and optionally a state file.

moto does not serialize concurrent writes to one item the way DynamoDB does (two conditional
updates can both pass their condition), so concurrency tests against it would be flaky or would
test moto. Serializing every request is stronger than DynamoDB's per-item serialization, so what
passes here holds there. Arguments are moto_server's (-H HOST -p PORT).

moto keeps its state in memory; DynamoDB and Secrets Manager do not lose data when a server
restarts. With MOTO_STATE_FILE set, the server loads the DynamoDB and Secrets Manager state from
that file at start (if it exists), and `POST /_moto_state/save-and-exit` writes the state there
and ends the process at once, under the same lock, so no request is applied after the save. The
reliability run uses this to restart the server mid-run without losing what it held.

`GET /_moto_state/calls` answers how many requests each API operation got (by X-Amz-Target,
e.g. `DynamoDB_20120810.PutItem`), so benchmarks count AWS calls at the emulator.

`POST /_moto_state/faults {"target", "contains", "after", "times"}` makes the next `times`
requests for that operation whose body contains `contains` answer HTTP 500 (DynamoDB's
InternalServerError, which the SDK retries): with `after` true the request is applied first,
as when DynamoDB's answer is lost after the write landed; otherwise it is not applied. With
`"partial": true` (EventBridge's PutEvents), only the entries whose JSON contains `contains` are
refused (`ThrottlingException` in the answer's entry, as EventBridge reports a partial failure)
and the others are published.
"""

import collections
import copyreg
import io
import json
import os
import pickle
import sys
import threading

from moto import server
from moto.backends import get_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

# SQS queues hold locks; a saved state gets fresh ones (nothing holds them across a restart).
copyreg.pickle(type(threading.RLock()), lambda lock: (threading.RLock, ()))
copyreg.pickle(type(threading.Lock()), lambda lock: (threading.Lock, ()))

_lock = threading.Lock()
_call = DomainDispatcherApplication.__call__
_STATE_FILE = os.environ.get("MOTO_STATE_FILE")
_SERVICES = ("dynamodb", "secretsmanager", "events", "sqs")
_SAVE_AND_EXIT = "/_moto_state/save-and-exit"
_CALLS = "/_moto_state/calls"
_FAULTS = "/_moto_state/faults"
_calls = collections.Counter()
_faults = []


def _save_and_exit():
    temporary = _STATE_FILE + ".tmp"
    with open(temporary, "wb") as f:
        pickle.dump({name: dict(get_backend(name)) for name in _SERVICES}, f)
    os.replace(temporary, _STATE_FILE)
    sys.stderr.flush()
    os._exit(0)


def _restore():
    if _STATE_FILE and os.path.exists(_STATE_FILE):
        with open(_STATE_FILE, "rb") as f:
            for name, accounts in pickle.load(f).items():
                get_backend(name).update(accounts)


def _read_body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _partially(app, environ, start_response, body, contains):
    """PutEvents with the entries containing `contains` refused and the others published."""
    entries = json.loads(body).get("Entries", [])
    refused = [contains in json.dumps(entry, ensure_ascii=False) for entry in entries]
    passing = [entry for entry, no in zip(entries, refused) if not no]
    published = []
    if passing:
        forwarded = json.dumps({"Entries": passing}).encode()
        environ["wsgi.input"] = io.BytesIO(forwarded)
        environ["CONTENT_LENGTH"] = str(len(forwarded))
        answer = b"".join(_call(app, environ, lambda *args, **kwargs: (lambda data: None)))
        published = json.loads(answer).get("Entries", [])
    merged, failed = [], 0
    for no in refused:
        if no or not published:
            merged.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "injected fault"})
            failed += 1
        else:
            entry = published.pop(0)
            failed += 1 if entry.get("ErrorCode") else 0
            merged.append(entry)
    start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1")])
    return [json.dumps({"FailedEntryCount": failed, "Entries": merged}).encode()]


def _injected(app, environ, start_response, target):
    """Answers 500 for a matching fault (applying the request first when asked)."""
    body = _read_body(environ)
    for fault in _faults:
        if fault["target"] == target and fault["times"] > 0 and fault["contains"].encode() in body:
            fault["times"] -= 1
            if fault["partial"]:
                return _partially(app, environ, start_response, body, fault["contains"])
            if fault["after"]:
                list(_call(app, environ, lambda *args, **kwargs: (lambda data: None)))
            start_response("500 Internal Server Error", [("Content-Type", "application/x-amz-json-1.0")])
            return [json.dumps({
                "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "message": "injected fault",
            }).encode()]
    return None


def _serialized(self, environ, start_response):
    with _lock:
        path = environ.get("PATH_INFO")
        if _STATE_FILE and path == _SAVE_AND_EXIT:
            _save_and_exit()
        if path == _CALLS:
            body = json.dumps(_calls).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path == _FAULTS:
            fault = json.loads(_read_body(environ) or b"{}")
            _faults.append({
                "target": fault["target"],
                "contains": fault.get("contains", ""),
                "after": bool(fault.get("after", False)),
                "times": int(fault.get("times", 1)),
                "partial": bool(fault.get("partial", False)),
            })
            start_response("204 No Content", [])
            return []
        target = environ.get("HTTP_X_AMZ_TARGET", "other")
        _calls[target] += 1
        if _faults:
            injected = _injected(self, environ, start_response, target)
            if injected is not None:
                return injected
        # Materialize the body inside the lock: the WSGI iterable may still read moto's state.
        return list(_call(self, environ, start_response))


DomainDispatcherApplication.__call__ = _serialized


class _KeepAliveHandler(server.MotoRequestHandler):
    """With MOTO_KEEP_ALIVE=1 (`make bench`): HTTP/1.1 connections stay open, as DynamoDB's
    endpoint keeps them. werkzeug's development server closes every connection after one answer,
    so each SDK call would pay a TCP connect and the benchmark would measure the emulator's
    habit, not the function. Whatever of a request body the application left unread is drained
    before the next request line is read."""

    # Headers and body are separate writes: without TCP_NODELAY the body of every answer on a
    # kept connection waits for the client's delayed ACK (tens of milliseconds).
    disable_nagle_algorithm = True

    def send_header(self, keyword, value):
        if keyword.lower() == "connection" and value.lower() == "close":
            return
        super().send_header(keyword, value)

    def run_wsgi(self):
        length = int(self.headers.get("Content-Length") or 0)
        stream = _CountingReader(self.rfile, length)
        self.rfile = stream
        try:
            super().run_wsgi()
        finally:
            self.rfile = stream.raw
            stream.drain()
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True


class _CountingReader:
    """The request's input stream, counting what was read of `length` body bytes."""

    def __init__(self, raw, length):
        self.raw, self.left = raw, length

    def read(self, size=-1):
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.read(size) if size else b""
        self.left -= len(data)
        return data

    def readline(self, size=-1):
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.readline(size) if size else b""
        self.left -= len(data)
        return data

    def drain(self):
        while self.left > 0:
            if not self.read(min(self.left, 65536)):
                break


if os.environ.get("MOTO_KEEP_ALIVE") == "1":
    server.MotoRequestHandler = _KeepAliveHandler

if __name__ == "__main__":
    _restore()
    server.main(sys.argv[1:])

"""moto in server mode, with each request handled atomically, cheap transactions, and opt-in contention.

moto's DynamoDB backend is not safe under concurrent requests: a transaction
that is cancelled restores a copy of the whole table taken when it started,
silently undoing writes other requests made meanwhile. DynamoDB never does
that (it cancels a transaction that conflicts with another in flight), so
this server accepts connections on many
threads but runs one request at a time through moto's backends.

That whole-table copy also makes every TransactWriteItems cost time in
proportion to the table (8 ms empty, 90 ms at 2,000 items, 260 ms at 8,000
here), so a long test run or a benchmark slows down as it writes. Since
requests run one at a time, a transaction only needs to be able to undo its
own items: `per_item_rollback` backs up just those and restores them if the
transaction is cancelled.

One request at a time also means no transaction ever meets another, so
`TransactionConflict` never happens. The contention mode (`--contention`, or
TESSERA_DDB_CONTENTION=1; off by default) puts DynamoDB's documented conflict
rules and a latency per call in front of moto (`Contention`):

- a TransactWriteItems holds every item it names (Put, Update, Delete and
  ConditionCheck) for its latency, sleeping while it holds them, not while it
  holds moto, so unrelated requests go on in parallel; then it lets go and
  runs in moto;
- a TransactWriteItems that names an item another one holds is cancelled:
  TransactionCanceledException with one CancellationReason per action, Code
  "TransactionConflict" for each held item and "None" for the rest;
- a PutItem, UpdateItem or DeleteItem on a held item fails with
  TransactionConflictException, and a TransactGetItems that reads one is
  cancelled like a transaction;
- single-item writes never conflict with each other: they run one at a time;
- GetItem, BatchGetItem, Query and Scan are never blocked;
- every call of those kinds first takes its latency (defaults: read 3 ms,
  write 5 ms, transact 10 ms; `--latency-ms-read/-write/-transact` or
  TESSERA_DDB_LATENCY_MS_READ/_WRITE/_TRANSACT).

The rules are the "Transaction conflict handling" section of the DynamoDB
Developer Guide (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html).
AWS publishes no latency per operation beyond "single-digit milliseconds" on
average for GetItem and PutItem (https://repost.aws/knowledge-center/dynamodb-high-latency);
a write waits for a quorum of replicas (the DynamoDB paper, USENIX ATC 2022,
https://www.usenix.org/conference/atc22/presentation/vig), and a transaction
makes two underlying writes of every item, prepare then commit (the same
Developer Guide page), hence the defaults. docs/local-dynamodb.md gives the details and what
is not modelled.

Connections are kept open between requests (`KeepAliveRequestHandler`): werkzeug's server closes each one
after its answer, so every AWS call opened a connection and the server started a thread for it, about a
quarter of the server's CPU for a GetItem or a PutItem.

Options: those of `python -m moto.server` (`-H HOST -p PORT`), and the above.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from dev.stack import moto_speed


class _BodyRead:
    """A request's input once its body is read whole: werkzeug's reads after the response (meant to discard
    what the application left unread) find nothing, and leave the next request on the connection alone."""

    def read(self, size: int = -1) -> bytes:
        return b""


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, keeping each connection open for the client's next request.

    Werkzeug's server answers every request with `Connection: close`, because Python's http.server cannot
    skip what an application leaves unread of a request's body before the next request line. Here the
    body (its Content-Length) is read whole before the application runs, so nothing is left unread and the
    connection can serve the next request: each AWS call no longer opens a connection and starts a thread.
    A request with a chunked body or a Content-Length that is not a number, an HTTP/1.0 request and one that
    asks to close still close. A kept connection relies on each answer's framing being exact, which holds
    for an application that answers with a whole body (`OneRequestAtATime` makes each answer whole)."""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):  # no answer waits on Nagle's timer (a TCP socket; not on a unix one)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def make_environ(self) -> Dict[str, Any]:
        environ = super().make_environ()
        length = environ.get("CONTENT_LENGTH") or "0"
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and length.isdigit() \
                and self.request_version >= "HTTP/1.1" and not self.close_connection:
            environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)))
            self.rfile = _BodyRead()
        return environ

    def run_wsgi(self) -> None:
        rfile = self.rfile
        try:
            super().run_wsgi()
        finally:
            self.rfile = rfile

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and isinstance(self.rfile, _BodyRead):
            return
        super().send_header(keyword, value)


class OneRequestAtATime:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))


def _touched_items(backend: Any, transact_items: List[Dict[str, Any]]) -> List[Tuple[str, dict, Optional[dict]]]:
    backups = []
    for entry in transact_items:
        op = next(iter(entry.values()), {})
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        if table is None:
            continue
        if "Key" in op:
            key = op["Key"]
        else:
            names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
            key = {name: op["Item"][name] for name in names if name in op.get("Item", {})}
        try:
            current = backend.get_item(op["TableName"], key)
        except Exception:  # a malformed key: moto itself rejects the transaction before writing
            continue
        backups.append((op["TableName"], key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    return backups


def per_item_rollback() -> None:
    """Replace moto's whole-table backup in TransactWriteItems with a backup of the items it touches."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items

    class TablesAreNotCopied:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

    def transact_write_items(self: Any, transact_items: List[Dict[str, Any]]) -> None:
        backups = _touched_items(self, transact_items)
        models.copy = TablesAreNotCopied()
        try:
            return original(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(backups):
                if attributes is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes)
            raise
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


DYNAMODB_TARGET = "DynamoDB_20120810."
DEFAULT_LATENCY_MS = {"read": 3.0, "write": 5.0, "transact": 10.0}
CALL_KINDS = {
    "GetItem": "read", "BatchGetItem": "read", "Query": "read", "Scan": "read",
    "PutItem": "write", "UpdateItem": "write", "DeleteItem": "write", "BatchWriteItem": "write",
    "TransactWriteItems": "transact", "TransactGetItems": "transact",
}
SINGLE_ITEM_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
CONFLICT_MESSAGE = "Transaction is ongoing for the item"
CREDENTIAL_SCOPE = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/")
NOT_LOOKED_UP: Any = object()

ItemId = Tuple[str, str, str, str]  # account, region, table, key (canonical JSON)


class Contention:
    """DynamoDB's transaction conflicts and per-call latency in front of moto (see the module docstring)."""

    def __init__(self, moto: OneRequestAtATime, latency_ms: Mapping[str, float]) -> None:
        self.moto = moto
        self.latency = {kind: latency_ms[kind] / 1000 for kind in DEFAULT_LATENCY_MS}
        self.claims = threading.Lock()
        self.held: Set[ItemId] = set()
        self.schemas: Dict[Tuple[str, str, str], Optional[Tuple[str, Tuple[str, ...]]]] = {}

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target[len(DYNAMODB_TARGET):] if target.startswith(DYNAMODB_TARGET) else ""
        if operation in ("CreateTable", "DeleteTable"):
            try:
                return self.moto(environ, start_response)
            finally:
                self.schemas.clear()
        kind = CALL_KINDS.get(operation)
        if kind is None:
            return self.moto(environ, start_response)
        request = _json_body(environ)
        if operation == "TransactWriteItems":
            return self._transact_write(environ, start_response, request)
        if operation == "TransactGetItems":
            with self.claims:
                conflicts = [item in self.held for item in self._transact_items(environ, request)]
            time.sleep(self.latency[kind])
            return _cancelled(start_response, conflicts) if any(conflicts) else self.moto(environ, start_response)
        time.sleep(self.latency[kind])
        if operation in SINGLE_ITEM_WRITES:
            item = self._item(environ, request.get("TableName"), request.get("Key") or request.get("Item"))
            with self.claims:
                held = item in self.held
            if held:
                return _error(start_response, "TransactionConflictException", {"message": CONFLICT_MESSAGE})
        return self.moto(environ, start_response)

    def _transact_write(self, environ: dict, start_response: Callable[..., Any],
                        request: dict) -> Iterable[bytes]:
        items = self._transact_items(environ, request)
        with self.claims:
            conflicts = [item in self.held for item in items]
            claimed = set() if any(conflicts) else {item for item in items if item is not None}
            self.held |= claimed
        try:
            time.sleep(self.latency["transact"])
        finally:
            with self.claims:
                self.held -= claimed
        # Run after letting go: the hold is the latency alone, not also this process's turn in moto. Each
        # transaction still applies atomically, its conditions read at that moment, so the order stays serial.
        return _cancelled(start_response, conflicts) if any(conflicts) else self.moto(environ, start_response)

    def _transact_items(self, environ: dict, request: dict) -> List[Optional[ItemId]]:
        items = []
        for entry in request.get("TransactItems") or []:
            action = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            if not isinstance(action, dict):
                items.append(None)
                continue
            items.append(self._item(environ, action.get("TableName"), action.get("Key") or action.get("Item")))
        return items

    def _item(self, environ: dict, table: Any, attributes: Any) -> Optional[ItemId]:
        """The item's identity, or None for a request moto will reject (no such table, no key)."""
        if not isinstance(table, str) or not isinstance(attributes, dict):
            return None
        match = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        access_key, region = match.groups() if match else ("AKIAEXAMPLE", "us-east-1")
        scope = (access_key, region, table)
        schema = self.schemas.get(scope, NOT_LOOKED_UP)
        if schema is NOT_LOOKED_UP:  # since the last CreateTable or DeleteTable
            with self.moto.lock:
                schema = self.schemas[scope] = _key_schema(access_key, region, table)
        if schema is None or not all(name in attributes for name in schema[1]):
            return None
        key = {name: attributes[name] for name in schema[1]}
        return schema[0], region, table, json.dumps(key, sort_keys=True)


def _key_schema(access_key: str, region: str, table: str) -> Optional[Tuple[str, Tuple[str, ...]]]:
    """The account and key attribute names of a table, as moto resolves them (call holding moto's lock)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.iam.models import get_account_id_from

    account = os.environ.get("MOTO_ACCOUNT_ID") or get_account_id_from(access_key)
    found = dynamodb_backends[account][region].tables.get(table)
    if found is None:
        return None
    return account, (found.hash_key_attr,) + ((found.range_key_attr,) if found.range_key_attr else ())


def _json_body(environ: dict) -> dict:
    """The request's JSON body, leaving an unread copy in place for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _error(start_response: Callable[..., Any], error_type: str, fields: Dict[str, Any]) -> List[bytes]:
    """A DynamoDB error response as botocore parses it (the code is `__type` after the '#')."""
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{error_type}", **fields}).encode()
    start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                       ("Content-Length", str(len(body))), ("x-amzn-RequestId", uuid.uuid4().hex)])
    return [body]


def _cancelled(start_response: Callable[..., Any], conflicts: List[bool]) -> List[bytes]:
    reasons = [{"Code": "TransactionConflict", "Message": CONFLICT_MESSAGE} if conflict else {"Code": "None"}
               for conflict in conflicts]
    message = ("Transaction cancelled, please refer cancellation reasons for specific reasons ["
               + ", ".join(reason["Code"] for reason in reasons) + "]")
    return _error(start_response, "TransactionCanceledException",
                  {"Message": message, "CancellationReasons": reasons})


def _latency_ms(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Dict[str, float]:
    """Each kind's latency: its flag, else TESSERA_DDB_LATENCY_MS_<KIND>, else DynamoDB's default."""
    latency = {}
    for kind, default in DEFAULT_LATENCY_MS.items():
        value = getattr(args, f"latency_ms_{kind}")
        if value is None:
            raw = os.environ.get(f"TESSERA_DDB_LATENCY_MS_{kind.upper()}", "").strip()
            try:
                value = float(raw) if raw else default
            except ValueError:
                parser.error(f"TESSERA_DDB_LATENCY_MS_{kind.upper()} must be a number of milliseconds, not {raw!r}")
        if not 0 <= value <= 10_000:
            parser.error(f"the {kind} latency must be from 0 to 10000 ms, not {value:g}")
        latency[kind] = value
    return latency


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--contention", action=argparse.BooleanOptionalAction,
                        default=os.environ.get("TESSERA_DDB_CONTENTION", "").strip() in ("1", "true", "yes"),
                        help="DynamoDB's transaction conflicts and latency (default: TESSERA_DDB_CONTENTION)")
    for kind, default in DEFAULT_LATENCY_MS.items():
        parser.add_argument(f"--latency-ms-{kind}", type=float, default=None, metavar="MS",
                            help=f"{kind} call latency with --contention (default {default:g})")
    parser.add_argument("--deploy-gaps", action="store_true",
                        help="what `chalice deploy` and a CloudFormation stack need that moto lacks (dev/stack/moto_gaps.py; "
                             "off by default: it loads every moto backend, about 2 s of CPU)")
    args = parser.parse_args(argv)
    given = [kind for kind in DEFAULT_LATENCY_MS if getattr(args, f"latency_ms_{kind}") is not None]
    if given and not args.contention:
        parser.error("--latency-ms-* apply only with --contention")
    # Exit at once: tearing down moto's in-memory backends at interpreter exit takes seconds.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    per_item_rollback()
    moto_speed.install()
    if args.deploy_gaps:
        from dev.stack import moto_gaps 

        moto_gaps.install()
    app: Callable[..., Iterable[bytes]] = OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    if args.contention:
        latency = _latency_ms(args, parser)
        app = Contention(app, latency)
        print("moto: DynamoDB contention mode (latency: "
              + ", ".join(f"{kind} {ms:g} ms" for kind, ms in latency.items()) + ")", file=sys.stderr, flush=True)
    run_simple(args.host, args.port, app, threaded=True, request_handler=KeepAliveRequestHandler)


if __name__ == "__main__":
    main()

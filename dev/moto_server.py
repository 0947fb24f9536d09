"""moto in server mode, with each request handled atomically and transactions that stay cheap.

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
transaction is cancelled. Same options as `python -m moto.server`:
`-H HOST -p PORT`.
"""
from __future__ import annotations

import argparse
import copy
import os
import signal
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    # Exit at once: tearing down moto's in-memory backends at interpreter exit takes seconds.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    per_item_rollback()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, OneRequestAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

"""moto's DynamoDB with the same answers at the speed a test suite needs.

Five costs of moto 5.2's DynamoDB server dominate a run of the suite (its two moto servers used about half
of the run's CPU, more than the tests themselves), and three of them grow with everything written before:

- **Query on the table's key** sorts every item of the table, then keeps the queried partition's
  (`Table.query` over `Table.all_items()`): a query's cost grows with the table, not with its answer.
  `partition_queries` hands such a query its partition's items alone; what follows in moto (the sort by
  range key, conditions, filters, pages, projections) is moto's own. A query on an index is left as it is.
- **Answers are serialized by walking the operation's botocore output shape**, asking an attribute
  picker for every member of every shape: each attribute value of each item tries all ten members of
  `AttributeValue` (S, N, B, ...) under two spellings. For the item operations (and the stream's
  GetRecords) moto's result is already the JSON document the shape describes, so `plain_item_answers`
  writes it as it is, keeping each structure's own members (moto's results carry a few more, such as
  ConsumedCapacityUnits), bytes as base64 and times as epoch seconds, as moto's JSON serializer writes them.
- **Each request lists its handler's methods** (`inspect.getmembers`) and **moto's own package folder** (a
  `stat` of each of its two hundred entries, to tell a service's name from a host); `cached_listings`
  makes each list once.
- **An update expression is parsed twice per UpdateItem** (once to list its names and values, once to run
  it), and a transaction's updates once more, then **copied with `copy.deepcopy`** before each validation,
  and **walked ten times** by validators whose node classes are abstract base classes (every `isinstance`
  on them goes through `ABCMeta.__instancecheck__`) and which rebuild their table of node types at every
  node. Together about half of an UpdateItem's time. `parsed_update_expressions` keeps the tree parsed from
  each expression's text (moto never changes it: its validator works on a copy); `plain_node_copies` copies
  a tree node by node as `deepcopy` would, without pickling's protocol; `plain_node_classes` gives the
  parser's classes `type`'s own instance checks (none has a registered virtual subclass, checked when
  installed); `processed_types_once` reads a validator's node types once.
- **moto keeps every model instance it ever makes** for its dashboard (`/moto-api/data.json`): each item,
  each copy of one, each stream record, for the server's life. `untracked_items` keeps none of DynamoDB's
  and DynamoDB Streams' (nothing reads them there; the suite reads the page for SES's messages), so memory
  stops growing with every write and that page no longer walks hundreds of thousands of them.

`TESSERA_MOTO_CHECK=<file>` makes the server answer every item operation both ways and append any
difference to that file (which starts with a line saying checking is on); that is how these were checked
against the suite (docs/local-dynamodb.md). `plain_node_classes` and `processed_types_once` are not compared
(moto's own answer runs with them too): one changes how `isinstance` is computed for classes without virtual
subclasses, the other keeps a tuple that moto rebuilt identically at every node.
"""
from __future__ import annotations

import base64
import calendar
import functools
import json
import os
from datetime import datetime
from typing import Any, Optional

ITEM_OPERATIONS = {
    "DynamoHandler": frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                                "BatchWriteItem", "TransactGetItems", "TransactWriteItems"}),
    "DynamoDBStreamsHandler": frozenset({"GetRecords"}),  # each usage stream pump asks up to four times a second
}
_EVERY_ITEM: Any = object()


def install() -> None:
    check_file = os.environ.get("TESSERA_MOTO_CHECK") or None
    partition_queries(check_file)
    plain_item_answers(check_file)
    cached_listings()
    parsed_update_expressions(check_file)
    plain_node_copies(check_file)
    plain_node_classes()
    processed_types_once()
    untracked_items()


def partition_queries(check_file: Optional[str] = None) -> None:
    from moto.dynamodb.models.table import Table

    query, all_items = Table.query, Table.all_items

    def partition_items(self: Any) -> list:
        partition = self.__dict__.get("_tessera_partition", _EVERY_ITEM)
        if partition is _EVERY_ITEM:
            return all_items(self)
        found = self.items.get(partition)  # a defaultdict: .get adds no empty partition
        if found is None:
            return []
        return list(found.values()) if self.range_key_attr else [found]

    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        self._tessera_partition = hash_key  # requests run one at a time (dev/stack/moto_server.py)
        try:
            found = query(self, hash_key, *args, **kwargs)
        finally:
            del self._tessera_partition
        if check_file:
            every = query(self, hash_key, *args, **kwargs)
            if _query_answer(found) != _query_answer(every):
                _note(check_file, f"Query of {hash_key!r} answered differently:\n  moto: {_query_answer(every)}\n"
                                  f"  ours: {_query_answer(found)}")
        return found

    Table.all_items = partition_items
    Table.query = partition_query


def _query_answer(answer: tuple) -> tuple:
    items, scanned, last_key = answer
    return [item.to_json() for item in items], scanned, last_key


def _plain(value: Any) -> Any:
    """An attribute value (or a map or list of them) as JSON: moto holds these as the API writes them."""
    if isinstance(value, dict):
        return {key: _plain(member) for key, member in value.items() if member is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(member) for member in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return value


def _shaped(value: Any, shape: Any) -> Any:
    """`value` as the JSON protocol writes it for `shape`: a structure keeps only its shape's members (moto's
    results carry a few more, such as ConsumedCapacityUnits), and an attribute value is written as it is."""
    kind = shape.type_name
    if shape.name == "AttributeValue":
        return _plain(value)
    if kind == "structure":
        return {name: _shaped(value[name], member) for name, member in shape.members.items()
                if value.get(name) is not None}
    if kind == "list":
        return [_shaped(member, shape.member) for member in value]
    if kind == "map":
        return {key: _shaped(member, shape.value) for key, member in value.items() if member is not None}
    if kind == "blob" and isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if kind == "timestamp" and isinstance(value, datetime):  # epoch seconds to the millisecond, as moto writes
        seconds = calendar.timegm(value.timetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    return value


def plain_item_answers(check_file: Optional[str] = None) -> None:
    from moto.core.responses import ActionResult, BaseResponse
    from moto.dynamodb.responses import DynamoResult

    serialized = BaseResponse.serialized
    if check_file:
        _note(check_file, f"moto_speed: process {os.getpid()} compares every item operation's answer with moto's")

    def plain(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if (type(action_result) not in (ActionResult, DynamoResult) or not isinstance(result, dict)
                or self._get_action() not in ITEM_OPERATIONS.get(type(self).__name__, ())):
            return serialized(self, action_result)
        body = json.dumps(_shaped(result, _output_shape(self.boto3_service_name, self._get_action())),
                          separators=(",", ":"))
        headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
        if check_file:
            _compare(check_file, self._get_action(), (200, headers, body), serialized(self, action_result))
        return 200, headers, body

    BaseResponse.serialized = plain


@functools.lru_cache(maxsize=None)
def _output_shape(service: str, operation: str) -> Any:
    from moto.core.utils import get_service_model

    return get_service_model(service).operation_model(operation).output_shape


def _compare(check_file: str, operation: str, ours: tuple, moto: tuple) -> None:
    status, headers, body = moto
    same = (ours[0] == status and json.loads(ours[2]) == json.loads(body)
            and ours[1].get("Content-Type") == headers.get("Content-Type"))
    if not same:
        _note(check_file, f"{operation} answered differently:\n  moto: {status} {headers} {body[:2000]}\n"
                          f"  ours: {ours[0]} {ours[1]} {ours[2][:2000]}")


def _note(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(text + "\n")


def cached_listings() -> None:
    from moto import backends
    from moto.core import responses, utils

    methods = functools.lru_cache(maxsize=None)(utils.method_names_from_class)
    utils.method_names_from_class = methods
    responses.method_names_from_class = methods
    modules = tuple(backends.list_of_moto_modules())  # the installed package's folders: fixed while it runs
    backends.list_of_moto_modules = lambda: modules


def _tree(node: Any) -> Any:
    """A parse tree as plain values, with a mark wherever a child's parent is not the node that holds it."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if not isinstance(node, Node):
        return repr(node)
    children = [(_tree(child), "" if not isinstance(child, Node) or child.parent is node else "PARENT?")
                for child in node.children or []]
    return type(node).__name__, node.type, children


def parsed_update_expressions(check_file: Optional[str] = None) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    make = UpdateExpressionParser.make.__func__
    parsed = functools.lru_cache(maxsize=4096)(make)

    def cached_make(cls: Any, text: str) -> Any:
        tree = parsed(cls, text)
        if check_file and _tree(tree) != _tree(make(cls, text)):
            _note(check_file, f"UpdateExpression {text!r} parsed differently from the cache")
        return tree

    UpdateExpressionParser.make = classmethod(cached_make)


_ATOMIC = frozenset({type(None), str, int, float, bool})


def plain_node_copies(check_file: Optional[str] = None) -> None:
    import copy

    from moto.dynamodb.parsing.ast_nodes import Node

    def node_copy(self: Any, memo: dict) -> Any:
        """What `copy.deepcopy` makes of a node (a new object of its class, then its attributes copied with
        the same memo, so a copied child's parent is the copied parent), without `__reduce_ex__`."""
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update({name: value if type(value) in _ATOMIC else copy.deepcopy(value, memo)
                             for name, value in self.__dict__.items()})
        return new

    if check_file:
        def checked_copy(self: Any, memo: dict) -> Any:
            new = node_copy(self, memo)
            del Node.__deepcopy__
            try:
                theirs = copy.deepcopy(self)
            finally:
                Node.__deepcopy__ = checked_copy
            ours = _tree(new)
            if ours != _tree(theirs) or ours != _tree(self):
                _note(check_file, f"a parse tree copied differently: {_tree(self)!r}")
            return new

        Node.__deepcopy__ = checked_copy
    else:
        Node.__deepcopy__ = node_copy


def plain_node_classes() -> None:
    import abc
    import inspect

    from moto.dynamodb.parsing import ast_nodes, executors, expressions, validators

    class PlainChecks(abc.ABCMeta):
        __instancecheck__ = type.__instancecheck__
        __subclasscheck__ = type.__subclasscheck__

    for module in (ast_nodes, executors, expressions, validators):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if type(cls) is abc.ABCMeta and cls.__module__ == module.__name__:
                if abc._get_dump(cls)[0]:  # a registered virtual subclass: only ABCMeta's check finds it
                    raise RuntimeError(f"{cls.__qualname__} has virtual subclasses; moto_speed needs a look")
                cls.__class__ = PlainChecks


def processed_types_once() -> None:
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    def nodes_to_be_processed(self: Any) -> tuple:
        """moto's: the node types of the traverser's processing table, made once per traverser, not per node."""
        types = self.__dict__.get("_tessera_node_types")
        if types is None:
            types = self.__dict__["_tessera_node_types"] = tuple(self._processing_map())
        return types

    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed


def untracked_items() -> None:
    """moto's `BaseModel` appends each new instance to its class's `instances_tracked`; DynamoDB's and
    DynamoDB Streams' instances now skip that (a reset of moto's model data, which gives each class a new
    list, does not bring it back)."""
    from moto.core.common_models import BaseModel

    tracked_new = BaseModel.__new__

    def __new__(cls: Any, *args: Any, **kwargs: Any) -> Any:
        if cls.__module__.startswith(("moto.dynamodb.", "moto.dynamodbstreams.")):
            return object.__new__(cls)
        return tracked_new(cls, *args, **kwargs)

    BaseModel.__new__ = staticmethod(__new__)

"""Hooks on the app's own DynamoDB client for the tests: a call refused at the client's edge (DynamoOutage),
the calls a block makes (DynamoCalls), and ClientHook, what both are built on."""
import json
import threading
from typing import Any, Dict


class ClientHook:
    """`with` a subclass: its `_before` handles botocore's `event` (e.g. "before-call.dynamodb.PutItem") on
    the app's own DynamoDB client for the block. With `own_thread_only`, only calls made on the thread that
    entered the block: the usage stream's pump calls through the same client on a thread of its own."""

    event = ""
    own_thread_only = False

    def _before(self, **kwargs):
        raise NotImplementedError

    def _heard(self, **kwargs):
        if self.own_thread_only and threading.get_ident() != self.thread:
            return None
        return self._before(**kwargs)

    def __enter__(self):
        from chalicelib.models import table_connection

        self.thread = threading.get_ident()
        self.client = table_connection().connection.client
        self.client.meta.events.register(self.event, self._heard)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.meta.events.unregister(self.event, self._heard)


class DynamoCalls(ClientHook):
    """Every DynamoDB call this thread makes on the app's own client in the block, in order, as `calls` of
    [operation name, parameters as the SDK hands them over, parsed answer (None until it is back)].
    `answered` is a subclass's turn to act on an answer before the app sees it."""

    event = "provide-client-params.dynamodb"
    own_thread_only = True

    def __init__(self):
        self.calls = []

    @property
    def names(self):
        return [name for name, _, _ in self.calls]

    @property
    def params(self):
        return [params for _, params, _ in self.calls]

    @property
    def answers(self):
        return [answer for _, _, answer in self.calls]

    def params_of(self, name):
        return [params for called, params, _ in self.calls if called == name]

    def answered(self, name, params, answer):
        pass

    def _before(self, params, model, context, **kwargs):
        call = [model.name, params, None]
        self.calls.append(call)
        context[self] = call  # botocore hands the call's own context to after-call: its answer finds it

    def _after(self, parsed, context, **kwargs):
        call = context.pop(self, None)  # None: a call this block did not record (another thread's)
        if call is not None:
            call[2] = parsed
            self.answered(*call)

    def __enter__(self):
        super().__enter__()
        self.client.meta.events.register("after-call.dynamodb", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.meta.events.unregister("after-call.dynamodb", self._after)
        super().__exit__(*exc)


class DynamoOutage(ClientHook):
    """DynamoDB answering one operation (`"PutItem"`, `"Query"`, ...) with a 500 at the client's edge, through
    a botocore before-call hook on the app's own client, for the requests `refuses` picks (all, unless a
    subclass says otherwise); `refused` counts them."""

    def __init__(self, operation: str) -> None:
        self.event, self.refused = f"before-call.dynamodb.{operation}", 0

    def refuses(self, request: Dict[str, Any]) -> bool:
        return True

    def _before(self, params, **kwargs):
        if not self.refuses(json.loads(params["body"])):
            return None
        self.refused += 1
        from botocore.awsrequest import AWSResponse

        return (AWSResponse("https://dynamodb.local/", 500, {}, None),
                {"Error": {"Code": "InternalServerError", "Message": "Internal server error"},
                 "ResponseMetadata": {"HTTPStatusCode": 500}})

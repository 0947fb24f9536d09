"""The tests' recorder of the app's DynamoDB calls (dynamo_hooks.DynamoCalls): the calls of the thread that entered
the block, each with its own answer; the usage stream's pump calls through the same client on a thread of its
own, and its calls are not the test's."""
from __future__ import annotations

import secrets
import threading

import pytest

from chalicelib.models import table_connection
from dynamo_hooks import DynamoCalls

pytestmark = pytest.mark.usefixtures("environment")


def read(pk):
    return table_connection().get_item(pk, "RECORDER", consistent_read=True)


def on_another_thread(call, *args):
    thread = threading.Thread(target=call, args=args)
    thread.start()
    thread.join()


def test_a_call_made_on_another_thread_inside_the_block_is_not_recorded_nor_given_its_answer():
    here, elsewhere = f"REC#{secrets.token_hex(4)}", f"REC#{secrets.token_hex(4)}"
    write(here)
    client, ours, sent = table_connection().connection.client, threading.get_ident(), []

    def another_read_while_ours_waits(**kwargs):  # its answer comes back while this thread's is awaited
        if threading.get_ident() == ours and not sent:
            sent.append(1)
            on_another_thread(read, elsewhere)

    client.meta.events.register("before-send.dynamodb.GetItem", another_read_while_ours_waits)
    try:
        with DynamoCalls() as calls:
            on_another_thread(read, elsewhere)
            read(here)
            on_another_thread(read, elsewhere)
    finally:
        client.meta.events.unregister("before-send.dynamodb.GetItem", another_read_while_ours_waits)
    assert sent and calls.names == ["GetItem"]
    assert calls.params[0]["Key"] == {"pk": {"S": here}, "sk": {"S": "RECORDER"}}
    assert calls.answers[0]["Item"]["pk"] == {"S": here}  # not the other thread's answer (no item)


def write(pk):
    table_connection().put_item(pk, "RECORDER", attributes={"n": {"N": "1"}})


class CallsOnAnswer(DynamoCalls):
    """On a GetItem's answer, before the app sees it: another thread reads a missing item, then this thread
    writes another item (a call inside a call's answer, as a test's rival writer makes)."""

    def answered(self, name, params, answer):
        if name == "GetItem":
            on_another_thread(read, f"REC#{secrets.token_hex(4)}")
            write(params["Key"]["pk"]["S"] + "#copy")


def test_each_answer_is_its_own_calls_even_when_calls_are_made_while_it_is_handed_over():
    pk = f"REC#{secrets.token_hex(4)}"
    write(pk)
    with CallsOnAnswer() as calls:
        read(pk)
    assert calls.names == ["GetItem", "PutItem"]
    assert calls.params[1]["Item"]["pk"] == {"S": pk + "#copy"}
    got, put = calls.answers
    assert got["Item"]["pk"] == {"S": pk} and "Item" not in put

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


def test_a_call_made_on_another_thread_inside_the_block_is_not_recorded():
    here, elsewhere = f"REC#{secrets.token_hex(4)}", f"REC#{secrets.token_hex(4)}"
    with DynamoCalls() as calls:
        on_another_thread(read, elsewhere)
        read(here)
        on_another_thread(read, elsewhere)
    assert calls.names == ["GetItem"]
    assert calls.params[0]["Key"] == {"pk": {"S": here}, "sk": {"S": "RECORDER"}}
    assert "Item" not in calls.answers[0] and calls.answers[0]["ResponseMetadata"]["HTTPStatusCode"] == 200


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

"""dev/stack/moto_server.py: a cancelled transaction undoes exactly its own writes, nothing else; a connection
serves call after call."""
import http.client
import json
import os
import urllib.parse

import boto3
import pytest

TABLE = "tessera-local"


def key(name):
    return {"pk": {"S": f"MOTOTEST#{name}"}, "sk": {"S": "x"}}


def counter(ddb, name):
    item = ddb.get_item(TableName=TABLE, Key=key(name)).get("Item")
    return int(item["n"]["N"]) if item else None


def add(name, condition=None):
    update = {"TableName": TABLE, "Key": key(name), "UpdateExpression": "ADD n :one",
              "ExpressionAttributeValues": {":one": {"N": "1"}}}
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


def test_cancelled_transaction_restores_only_the_items_it_touched():
    ddb = boto3.client("dynamodb")
    ddb.transact_write_items(TransactItems=[add("a"), add("bystander")])
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[
            add("a"), {"Put": {"TableName": TABLE, "Item": {**key("new"), "v": {"S": "1"}}}},
            add("a-guard", condition="attribute_exists(pk)")])
    assert counter(ddb, "a") == 1
    assert ddb.get_item(TableName=TABLE, Key=key("new")).get("Item") is None
    assert counter(ddb, "a-guard") is None
    ddb.transact_write_items(TransactItems=[add("bystander")])
    assert counter(ddb, "bystander") == 2


def test_committed_transaction_applies_every_item():
    ddb = boto3.client("dynamodb")
    ddb.transact_write_items(TransactItems=[add("c1"), add("c2")])
    assert (counter(ddb, "c1"), counter(ddb, "c2")) == (1, 1)


# --- connections ------------------------------------------------------------------

SIGNED = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0"


def connect() -> http.client.HTTPConnection:
    url = urllib.parse.urlsplit(os.environ["AWS_ENDPOINT_URL"])
    return http.client.HTTPConnection(url.hostname, url.port, timeout=10)


def send(connection, target, body, **options):
    headers = {"X-Amz-Target": f"DynamoDB_20120810.{target}", "Content-Type": "application/x-amz-json-1.0",
               "Authorization": SIGNED}
    connection.request("POST", "/", body=body if isinstance(body, (bytes, list)) else json.dumps(body).encode(),
                       headers=headers, **options)
    response = connection.getresponse()
    return response, response.read()


def test_one_connection_carries_call_after_call_a_refused_body_included():
    """Werkzeug's own server closed the connection after each answer, so every AWS call opened a connection
    and the server started a thread for it; the server now reads each body whole first and keeps it open."""
    connection = connect()
    first, _ = send(connection, "PutItem", {"TableName": TABLE, "Item": {**key("kept"), "v": {"S": "x" * 5000}}})
    sock = connection.sock
    refused, _ = send(connection, "PutItem", b'{"TableName": "' + b"x" * 3000)  # JSON cut short: moto's 500
    connection.request("GET", "/moto-api/data.json", body=b"x" * 4096)  # a body moto never reads
    unread = connection.getresponse()
    unread.read()
    read, got = send(connection, "GetItem", {"TableName": TABLE, "Key": key("kept"), "ConsistentRead": True})
    assert (first.status, refused.status, unread.status, read.status) == (200, 500, 200, 200)
    assert json.loads(got)["Item"]["v"] == {"S": "x" * 5000}
    assert connection.sock is sock is not None and first.getheader("Connection") is None
    connection.close()


def test_a_chunked_body_is_answered_then_its_connection_closed():
    connection = connect()
    body = json.dumps({"TableName": TABLE, "Key": key("chunked")}).encode()
    response, answer = send(connection, "GetItem", [body[:10], body[10:]], encode_chunked=True)
    assert response.status == 200 and json.loads(answer) == {}
    assert response.getheader("Connection") == "close" and connection.sock is None

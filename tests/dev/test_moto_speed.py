"""dev/stack/moto_speed.py: the local DynamoDB's shortcuts answer what moto itself answers.

A moto server of this module's own runs with TESSERA_MOTO_CHECK, so it also answers every item call and
every Query moto's own way and writes any difference to a file; each test reads the answers it expects
(written out here, not asked of moto) and finds that file holding its first line alone."""
from __future__ import annotations

import json
import os
import secrets
import urllib.request
from pathlib import Path

import boto3
import pytest

from dev.stack import local_stack as stack
from dev.stack import moto_speed

TABLE = "moto-speed"


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """(client, stream client, check file) of a moto server that checks itself."""
    check_file = tmp_path_factory.mktemp("moto-speed") / "differences.txt"
    port = stack.free_port()
    saved = os.environ.get("TESSERA_MOTO_CHECK")
    os.environ["TESSERA_MOTO_CHECK"] = str(check_file)
    try:
        process = stack.start_moto(port)
    finally:
        os.environ.pop("TESSERA_MOTO_CHECK")
        if saved is not None:
            os.environ["TESSERA_MOTO_CHECK"] = saved
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    client.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g")],
        GlobalSecondaryIndexes=[{"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
    yield client, streams, check_file
    os.killpg(process.pid, 15)
    process.wait(timeout=10)


def differences(check_file: Path) -> list:
    lines = check_file.read_text().splitlines()
    assert lines and "compares every item operation's answer" in lines[0], lines[:1]
    return lines[1:]


def item(pk: str, sk: str, **more) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **more}


def test_a_query_on_the_tables_key_answers_as_moto_does_among_other_partitions(checked):
    client, _, check_file = checked
    run = secrets.token_hex(4)
    for p in range(12):  # other partitions, before and after the one queried, in the same table
        for s in range(5):
            client.put_item(TableName=TABLE, Item=item(f"{run}#{p}", f"s{s}", n={"N": str(p * 10 + s)}))
    mine = f"{run}#5"

    def sks(**query) -> list:
        pages, start = [], None
        while True:
            page = client.query(TableName=TABLE, KeyConditionExpression="pk = :p",
                                ExpressionAttributeValues={":p": {"S": mine}, **query.pop("values", {})},
                                **query, **({"ExclusiveStartKey": start} if start else {}))
            pages.append([found["sk"]["S"] for found in page["Items"]])
            start = page.get("LastEvaluatedKey")
            if not start:
                return pages

    assert sks() == [["s0", "s1", "s2", "s3", "s4"]]
    assert sks(ScanIndexForward=False, Limit=2) == [["s4", "s3"], ["s2", "s1"], ["s0"]]
    assert sks(FilterExpression="n > :low", values={":low": {"N": "52"}}) == [["s3", "s4"]]
    between = client.query(TableName=TABLE, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                           ExpressionAttributeValues={":p": {"S": mine}, ":a": {"S": "s1"}, ":b": {"S": "s3"}},
                           ProjectionExpression="sk")
    assert between["Items"] == [{"sk": {"S": "s1"}}, {"sk": {"S": "s2"}}, {"sk": {"S": "s3"}}]
    assert client.query(TableName=TABLE, KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": f"{run}#none"}})["Items"] == []
    assert differences(check_file) == []


def test_an_index_query_and_every_kind_of_attribute_come_back_as_written(checked):
    client, _, check_file = checked
    run = secrets.token_hex(4)
    attributes = {"b": {"B": b"\x00\xffbytes"}, "bs": {"BS": [b"a", b"\x01"]}, "n": {"N": "-12.5"},
                  "ns": {"NS": ["1", "2"]}, "ss": {"SS": ["x", "y"]}, "t": {"BOOL": True}, "z": {"NULL": True},
                  "l": {"L": [{"S": "a"}, {"N": "1"}, {"M": {"deep": {"B": b"\x02"}}}]},
                  "m": {"M": {"k": {"S": "v"}, "e": {"M": {}}}}}
    client.put_item(TableName=TABLE, Item=item(f"{run}#a", "x", g={"S": run}, **attributes))
    got = client.get_item(TableName=TABLE, Key={"pk": {"S": f"{run}#a"}, "sk": {"S": "x"}})["Item"]
    sets = ("bs", "ns", "ss")  # a set comes back in any order
    assert {name: got[name] for name in attributes if name not in sets} == {
        name: value for name, value in attributes.items() if name not in sets}
    assert {name: sorted(next(iter(got[name].values()))) for name in sets} == {
        name: sorted(next(iter(attributes[name].values()))) for name in sets}
    by_index = client.query(TableName=TABLE, IndexName="by-g", KeyConditionExpression="g = :g",
                            ExpressionAttributeValues={":g": {"S": run}})["Items"]
    assert [found["pk"]["S"] for found in by_index] == [f"{run}#a"]
    old = client.update_item(TableName=TABLE, Key={"pk": {"S": f"{run}#a"}, "sk": {"S": "x"}},
                             UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {"N": "3"}},
                             ReturnValues="UPDATED_OLD")["Attributes"]
    assert old == {"n": {"N": "-12.5"}}
    batch = client.batch_get_item(RequestItems={TABLE: {"Keys": [{"pk": {"S": f"{run}#a"}, "sk": {"S": "x"}},
                                                                 {"pk": {"S": f"{run}#b"}, "sk": {"S": "x"}}]}})
    assert [found["n"] for found in batch["Responses"][TABLE]] == [{"N": "3"}]
    deleted = client.delete_item(TableName=TABLE, Key={"pk": {"S": f"{run}#a"}, "sk": {"S": "x"}},
                                 ReturnValues="ALL_OLD")["Attributes"]
    assert deleted["b"] == {"B": b"\x00\xffbytes"}
    assert differences(check_file) == []


def test_an_update_expression_parsed_once_runs_with_each_calls_own_values_and_names(checked):
    """The parse tree of an expression's text is kept (`parsed_update_expressions`) and copied node by node
    for each validation (`plain_node_copies`): the same text with other values, other names and another item
    must update as a first parse would, in UpdateItem and in a transaction, and the checking server finds
    no difference from a fresh parse or from `copy.deepcopy`."""
    client, _, check_file = checked
    run = secrets.token_hex(4)
    text = "SET #c = if_not_exists(#c, :zero) + :n, tags = list_append(if_not_exists(tags, :none), :tag) ADD hits :one"

    def update(sk: str, counter: str, n: int, tag: str) -> dict:
        return dict(TableName=TABLE, Key=item(f"{run}#u", sk), UpdateExpression=text,
                    ExpressionAttributeNames={"#c": counter},
                    ExpressionAttributeValues={":zero": {"N": "0"}, ":n": {"N": str(n)}, ":one": {"N": "1"},
                                               ":none": {"L": []}, ":tag": {"L": [{"S": tag}]}})

    client.update_item(**update("a", "spent", 5, "x"))
    client.update_item(**update("a", "spent", 7, "y"))
    client.update_item(**update("b", "calls", 2, "z"))
    client.transact_write_items(TransactItems=[{"Update": update("a", "calls", 1, "t")},
                                               {"Update": update("b", "calls", 3, "u")}])
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(TransactItems=[
            {"Update": {**update("a", "spent", 100, "never"), "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": update("b", "calls", 100, "never")}])
    with pytest.raises(client.exceptions.ClientError, match="attribute value is not defined|value used in expression is not defined"):
        client.update_item(**{**update("a", "spent", 1, "never"), "ExpressionAttributeValues": {":n": {"N": "1"}}})

    def stored(sk: str) -> dict:
        found = client.get_item(TableName=TABLE, Key=item(f"{run}#u", sk), ConsistentRead=True)["Item"]
        return {name: found[name] for name in found if name not in ("pk", "sk")}

    assert stored("a") == {"spent": {"N": "12"}, "calls": {"N": "1"}, "hits": {"N": "3"},
                           "tags": {"L": [{"S": "x"}, {"S": "y"}, {"S": "t"}]}}
    assert stored("b") == {"calls": {"N": "5"}, "hits": {"N": "2"}, "tags": {"L": [{"S": "z"}, {"S": "u"}]}}
    assert differences(check_file) == []


def test_a_parse_tree_copied_or_parsed_wrongly_is_written_down(tmp_path):
    """The checks behind the update shortcuts compare trees with `_tree`, which must see a wrong parent
    link, a wrong child, a node of another class and a node whose `type` names another."""
    import copy

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    tree = UpdateExpressionParser.make("SET a = :v REMOVE b")
    assert moto_speed._tree(copy.deepcopy(tree)) == moto_speed._tree(tree)
    orphaned = copy.deepcopy(tree)
    orphaned.children[0].parent = None
    assert "PARENT?" in repr(moto_speed._tree(orphaned)) and moto_speed._tree(orphaned) != moto_speed._tree(tree)
    assert moto_speed._tree(UpdateExpressionParser.make("SET a = :w REMOVE b")) != moto_speed._tree(tree)
    assert moto_speed._tree(UpdateExpressionParser.make("SET a = :v ADD b :v")) != moto_speed._tree(tree)
    retyped = copy.deepcopy(tree)  # the same shape and children, one node of another class
    retyped.children[1].__class__ = type(tree.children[0])
    assert moto_speed._tree(retyped) != moto_speed._tree(tree)
    renamed = copy.deepcopy(tree)  # the same classes, one node's `type` changed
    renamed.children[1].type = tree.children[0].type
    assert moto_speed._tree(renamed) != moto_speed._tree(tree)


def test_the_streams_records_carry_their_images_and_times(checked):
    client, streams, check_file = checked
    run = secrets.token_hex(4)
    client.put_item(TableName=TABLE, Item=item(f"{run}#s", "x", b={"B": b"\x07"}))
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    mine = [r for r in records if r["dynamodb"]["Keys"]["pk"] == {"S": f"{run}#s"}]
    assert [r["eventName"] for r in mine] == ["INSERT"]
    assert mine[0]["dynamodb"]["NewImage"]["b"] == {"B": b"\x07"}
    assert mine[0]["dynamodb"]["ApproximateCreationDateTime"].year >= 2024  # a time, parsed as one by botocore
    assert differences(check_file) == []


def test_the_dashboards_data_keeps_no_table_item_and_still_lists_what_ses_sent(checked):
    """moto keeps each model instance it ever makes for its dashboard's data.json: every item, every copy of
    one, every stream record. A server's memory and that page's cost grew with each write; the suite reads
    the page for SES's messages alone."""
    client, _, _ = checked
    client.put_item(TableName=TABLE, Item=item("dashboard", "1"))
    endpoint = client.meta.endpoint_url
    ses = boto3.client("ses", endpoint_url=endpoint, region_name="us-east-1")
    ses.verify_email_identity(EmailAddress="from@example.com")
    ses.send_email(Source="from@example.com", Destination={"ToAddresses": ["to@example.com"]},
                   Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})
    with urllib.request.urlopen(endpoint + "/moto-api/data.json") as response:
        data = json.load(response)
    assert data["dynamodb"]["Item"] == [] and data["dynamodb"]["StreamRecord"] == []
    assert [m["destinations"]["ToAddresses"] for m in data["ses"]["Message"]] == [["to@example.com"]]


def test_a_difference_from_motos_answer_is_written_down(tmp_path):
    check_file = tmp_path / "differences.txt"
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    moto_speed._compare(str(check_file), "GetItem", (200, headers, '{"Item":{"a":{"S":"1"}}}'),
                        (200, headers, '{"Item": {"a": {"S": "1"}}}'))
    assert not check_file.exists()
    moto_speed._compare(str(check_file), "GetItem", (200, headers, '{"Item":{"a":{"S":"1"}},"Extra":1}'),
                        (200, headers, '{"Item": {"a": {"S": "1"}}}'))
    assert "GetItem answered differently" in check_file.read_text()

"""The stand-in speaks Bedrock's runtime API (dev/standin/bedrock.py) as the SDK's own AnthropicBedrock client
sends and parses it: signed invoke and invoke-with-response-stream, AWS event-stream frames, Bedrock's errors,
and faults that touch Bedrock only."""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import anthropic
import pytest
from anthropic import AnthropicBedrock

from dev.standin import bedrock as standin_bedrock
from test_anthropic_standin import server_url  # noqa: F401 (a stand-in of this module's own, on a thread)

PROFILE = "global.anthropic.claude-sonnet-4-6"
ASK = {"max_tokens": 64, "messages": [{"role": "user", "content": "bedrock-probe hello"}]}


@pytest.fixture
def bedrock(server_url, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDINTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-standin-test")
    with AnthropicBedrock(aws_region="us-east-1", base_url=server_url, max_retries=0, timeout=5) as client:
        yield client


def requests_of(url):
    with urllib.request.urlopen(f"{url}/_standin/requests") as response:
        return json.load(response)


def post(url, path, body, headers=None):
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_signed_invoke_is_answered_with_the_message_of_the_profiles_model(bedrock, server_url):
    message = bedrock.messages.create(model=PROFILE, **ASK)
    assert message.model == "claude-sonnet-4-6" and message.content[0].text.startswith("[stand-in] model=claude-sonnet-4-6")
    recorded = requests_of(server_url)[-1]
    assert (recorded["provider"], recorded["model_id"], recorded["auth_header"], recorded["stream"]) == (
        "bedrock", PROFILE, "sigv4", False)
    assert recorded["usage"]["output_tokens"] == message.usage.output_tokens


def test_a_streamed_invoke_is_an_aws_event_stream_the_sdk_reads_as_anthropics_events(bedrock, server_url):
    with bedrock.messages.stream(model=PROFILE, **ASK) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "text" in kinds
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == requests_of(server_url)[-1]["usage"][
        "output_tokens"]


def test_each_frame_is_a_chunk_event_carrying_base64_json_with_valid_checksums():
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(standin_bedrock.chunk("message_stop", {"amazon-bedrock-invocationMetrics": {"inputTokenCount": 3}}))
    [message] = list(buffer)  # botocore checks both CRCs while parsing
    assert message.headers == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    data = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
    assert data == {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3}}


def test_an_unsigned_request_is_refused_as_bedrock_refuses_it(server_url):
    status, headers, body = post(server_url, f"/model/{PROFILE}/invoke", {"anthropic_version": "bedrock-2023-05-31",
                                                                          **ASK})
    assert status == 403 and headers["x-amzn-ErrorType"].startswith("AccessDeniedException")
    assert "message" in json.loads(body)


def test_a_base_model_id_needs_its_inference_profile(bedrock):
    with pytest.raises(anthropic.BadRequestError) as refused:
        bedrock.messages.create(model="anthropic.claude-sonnet-4-6", **ASK)
    assert "inference profile" in refused.value.body["message"]


def test_a_body_with_model_or_without_anthropic_version_is_refused(server_url):
    bearer = {"Authorization": "Bearer bedrock-api-key"}
    status, _, body = post(server_url, f"/model/{PROFILE}/invoke", ASK, bearer)
    assert status == 400 and "anthropic_version" in json.loads(body)["message"]
    status, _, body = post(server_url, f"/model/{PROFILE}/invoke",
                           {"anthropic_version": "bedrock-2023-05-31", "model": "x", **ASK}, bearer)
    assert status == 400 and "model" in json.loads(body)["message"]


def test_bedrock_faults_fail_bedrock_and_not_anthropic(bedrock, server_url):
    with pytest.raises(anthropic.InternalServerError) as failed:
        bedrock.messages.create(model=PROFILE, max_tokens=16, messages=[{"role": "user", "content": "x [[bedrock:503]]"}])
    assert failed.value.status_code == 503
    with anthropic.Anthropic(base_url=server_url, api_key="sk-standin", max_retries=0) as first_party:
        assert first_party.messages.create(model="claude-sonnet-4-6", max_tokens=16,
                                           messages=[{"role": "user", "content": "x [[bedrock:503]]"}]).content
    status, _, _ = post(server_url, "/_standin/bedrock/faults", {"status": 429, "count": 1})
    assert status == 200
    with pytest.raises(anthropic.RateLimitError):
        bedrock.messages.create(model=PROFILE, **ASK)
    assert bedrock.messages.create(model=PROFILE, **ASK).content  # the queued fault was used up


def test_a_cut_bedrock_stream_breaks_after_its_first_delta(bedrock):
    import httpx2

    seen = []
    with pytest.raises(httpx2.RemoteProtocolError):  # the chunked body ends without its last chunk
        with bedrock.messages.stream(model=PROFILE, max_tokens=64,
                                     messages=[{"role": "user", "content": "x [[bedrock:stream_cut]]"}]) as stream:
            for event in stream:
                seen.append(event.type)
    assert "message_start" in seen and "message_stop" not in seen

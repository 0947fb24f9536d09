"""What the gateway answers by itself (dev/deploy/gateway_responses.py), as the test client and `make run` see it."""
from __future__ import annotations

import json


def test_an_unknown_path_is_a_404_not_found_that_repeats_no_credential(api, acme):
    response = api.call("GET", "/no/such/route", token=acme.token)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert acme.token not in response.body.decode() and "Authorization" not in response.body.decode()
    assert response.headers["X-Request-Id"]


def test_an_unknown_path_without_a_credential_is_the_same_404(api):
    response = api.call("POST", "/v2/anything")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_a_refused_credential_is_a_401_envelope_with_a_request_id(api):
    response = api.call("GET", "/me", token="not-a-token")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["X-Request-Id"]


def test_a_missing_credential_is_a_401_in_both_error_shapes_with_a_request_id(api):
    response = api.call("GET", "/usage")
    assert response.status_code == 401
    body = json.loads(response.body)
    assert body["type"] == "error" and set(body["error"]) == {"type", "code", "message"}
    assert body["error"]["type"] == "authentication_error"
    assert response.headers["X-Request-Id"] == response.headers["request-id"]


def test_an_unknown_v1_path_is_anthropics_404_not_found_error_with_a_request_id(api):
    for token in (None, "tsk_ten_nope.key_nope.secret"):
        response = api.call("POST", "/v1/no_such_endpoint", {"x": 1}, token=token)
        assert response.status_code == 404
        body = json.loads(response.body)
        assert body["type"] == "error"
        assert (body["error"]["type"], body["error"]["code"]) == ("not_found_error", "not_found")
        assert response.headers["request-id"] == response.headers["X-Request-Id"]


def test_a_routes_own_answer_carries_a_request_id_too(api, acme):
    headers = api.call("GET", "/me", token=acme.token).headers
    assert headers["X-Request-Id"] and headers["request-id"] == headers["X-Request-Id"]

"""What the gateway answers by itself (dev/gateway_responses.py), as the test client and `make run` see it."""
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


def test_a_missing_credential_is_a_401_envelope_with_a_request_id(api):
    response = api.call("GET", "/usage")
    assert response.status_code == 401
    assert set(json.loads(response.body)["error"]) == {"code", "message"}
    assert response.headers["X-Request-Id"]


def test_a_routes_own_answer_carries_a_request_id_too(api, acme):
    assert api.call("GET", "/me", token=acme.token).headers["X-Request-Id"]

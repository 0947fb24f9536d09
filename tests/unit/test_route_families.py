"""The route families (chalicelib/routes/) serve the request they were called for: when one app serves
several at once on threads, as `chalice local` does (one thread per connection, and chalice keeps one
`current_request` per app), and in each of the bench's copies of app.py (dev/bench/harness.py), whose
route families are their own."""
import json
import threading

from chalicelib.tenancy import TenantContext
from dev.bench.harness import load_app_copy


def app_copy(index):
    return load_app_copy(index).app


def get_me(app, tenant_id):
    ctx = TenantContext(tenant_id=tenant_id, principal_id="usr_1", principal_type="user", role="owner",
                        display="owner@example.com")
    event = {"resource": "/me", "path": "/me", "httpMethod": "GET", "headers": {}, "multiValueHeaders": {},
             "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None, "body": None,
             "isBase64Encoded": False,
             "requestContext": {"resourcePath": "/me", "httpMethod": "GET", "requestId": f"req_{tenant_id}",
                                "authorizer": ctx.to_authorizer()}}
    response = app(event, None)
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])["tenant_id"]


def test_each_copy_of_the_app_answers_from_its_own_request_with_every_route_as_declared():
    import app  # the bench's own app.py comes first, as in dev/bench/harness.py

    first, last = app_copy(0), app_copy(1)
    assert get_me(first, "ten_first") == "ten_first"
    assert get_me(last, "ten_last") == "ten_last"
    for served in (app.app, first, last):  # chalice takes a route's methods out of its options as it registers it
        assert sorted(served.routes["/tenants"]) == ["POST"] and sorted(served.routes["/v1/messages"]) == ["POST"]
        assert sorted(served.routes["/tenant"]) == ["GET", "PATCH"]


def test_requests_served_at_once_on_threads_of_one_app_each_see_their_own_tenant():
    app = app_copy(2)
    together = threading.Barrier(4)

    def all_at_once(event, get_response):  # every thread's request is under way before any is served
        together.wait(timeout=10)
        return get_response(event)

    app.register_middleware(all_at_once, "http")
    seen, errors = {}, []

    def serve(i):
        try:
            seen[i] = [get_me(app, f"ten_{i}") for _ in range(25)]
        except Exception as error:  # reported below, with the thread's index
            errors.append((i, error))

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen == {i: [f"ten_{i}"] * 25 for i in range(4)}

"""The route families (chalicelib/routes/) serve the request of the app that called them, wherever the same
blueprints are registered more than once: the bench drives one copy of app.py per thread, all sharing the
families (dev/bench/harness.py), and a blueprint's own `current_request` is only its last app's."""
import importlib.util
import json
import threading
from pathlib import Path

from chalicelib.tenancy import TenantContext

ROOT = Path(__file__).resolve().parents[2]


def app_copy(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


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


def test_each_copy_of_the_app_answers_from_its_own_request():
    first, last = app_copy("_families_first"), app_copy("_families_last")  # the blueprints' last app: `last`
    assert get_me(first, "ten_first") == "ten_first"
    assert get_me(last, "ten_last") == "ten_last"


def test_copies_serving_at_once_on_threads_each_see_their_own_tenant():
    apps = [app_copy(f"_families_{i}") for i in range(4)]
    seen, errors = {}, []

    def serve(i):
        try:
            seen[i] = [get_me(apps[i], f"ten_{i}") for _ in range(25)]
        except Exception as error:  # reported below, with the thread's index
            errors.append((i, error))

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen == {i: [f"ten_{i}"] * 25 for i in range(4)}

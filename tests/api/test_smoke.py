def test_health(api):
    r = api.call("GET", "/health")
    assert r.status_code == 200 and r.json == {"status": "ok"}


def test_signup_login_me(api):
    t = api.signup()
    r = api.call("GET", "/me", token=t.token)
    assert r.status_code == 200, r.body
    assert r.json["tenant_id"] == t.id and r.json["role"] == "owner"

"""Routes without a credential: health, the console's files, signing up and logging in."""
from chalice import Response

from chalicelib import console, tenants
from chalicelib.identity import login as identity_login
from chalicelib.routes import Routes
from chalicelib.web import source_address

routes = Routes(__name__)


@routes.public("/health", methods=["GET"])
def health():
    return {"status": "ok"}


@routes.public("/console", methods=["GET"])
def console_page():
    return static_file("index.html")


@routes.public("/console/{name}", methods=["GET"])
def console_asset(name):
    return static_file(name)


def static_file(name):
    text, headers = console.asset(name)
    return Response(body=text, headers=headers)


@routes.public("/tenants", methods=["POST"])
def sign_up():
    status, created, headers = tenants.sign_up_once(routes.body(),
                                                    routes.current_request.headers.get("idempotency-key"))
    return Response(body=created, status_code=status, headers=headers)


@routes.public("/auth/login", methods=["POST"])
def log_in():
    request = routes.current_request
    return identity_login.login(routes.body(), request.headers.get("host"), source_address(request))

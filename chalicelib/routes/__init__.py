"""The HTTP API's route families, each a chalice Blueprint that app.py registers (app.py lists them all).

`Routes` is chalice's Blueprint with the house's conventions, so a family's routes read as app.py's did:
a route is the tenant authorizer's unless it names the operator's or is `public`; a domain error becomes
the error envelope (chalicelib/web.py `translated`); the tenant comes from the authorizer, never from a
path, query or body. Each route parses its request, makes one service call and returns a dict."""
from __future__ import annotations

import contextvars
import functools
from typing import Any, Callable, Optional

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import audit
from chalicelib.ai import calls
from chalicelib.ai.gateway import default_gateway
from chalicelib.routes.authorizers import operator_auth, tenant_auth
from chalicelib.tenancy import TenantContext
from chalicelib.web import body, tenant_context, translated

__all__ = ["Routes", "no_content", "operator_auth", "request_scope", "tenant_auth"]

_request: contextvars.ContextVar[Request] = contextvars.ContextVar("request")


def request_scope(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """The app's middleware that tells the families which request they serve. chalice's own
    `current_request` is one attribute of the app, which `chalice local`'s threads (one per connection)
    would overwrite under one another; a context variable is each request's own."""
    token = _request.set(event)
    try:
        return get_response(event)
    finally:
        _request.reset(token)


def no_content() -> Response:
    return Response(body="", status_code=204)


class Routes(Blueprint):
    """A family of routes. `route` is chalice's, with the tenant authorizer by default and errors mapped to
    the envelope (`render` for another error shape: Anthropic's on /v1/*)."""

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        # Answer a retry carrying the same Idempotency-Key with the first call's response (billed once).
        self.idempotent = calls.idempotent_view(lambda: self.current_request, lambda: self.tenant().tenant_id)

    def route(self, path: str, authorizer=tenant_auth, render: Optional[Callable] = None, **kwargs: Any):
        register = super().route

        def decorate(view):
            return register(path, authorizer=authorizer, **kwargs)(translated(view, render) if render
                                                                   else translated(view))
        return decorate

    def public(self, path: str, **kwargs: Any):
        register = super().route
        return lambda view: register(path, **kwargs)(translated(view))

    # --- what a view reads of its request ---------------------------------------------------------------

    @property
    def current_request(self) -> Request:
        return _request.get()

    def tenant(self) -> TenantContext:
        return tenant_context(self.current_request)

    def body(self, max_bytes: Optional[int] = None) -> dict:
        return body(self.current_request, max_bytes)

    def query(self, name: str) -> Optional[str]:
        return (self.current_request.query_params or {}).get(name)

    def operator(self) -> audit.Actor:
        return audit.Actor("operator", self.current_request.context["authorizer"]["operator_id"])

    # --- what wraps a view ------------------------------------------------------------------------------

    def needs_feature(self, feature: str):
        """Refuse the route unless the caller's plan includes `feature`."""
        def gate(view):
            @functools.wraps(view)
            def gated(*args, **kwargs):
                default_gateway().require_plan_feature(self.tenant().tenant_id, feature)
                return view(*args, **kwargs)
            return gated
        return gate

    def as_tenant(self, params) -> tuple:
        ctx = self.tenant()
        return ctx.tenant_id, audit.Actor(ctx.principal_type, ctx.principal_id)

    def as_operator(self, params) -> tuple:
        return params["tenant_id"], self.operator()

    def audited(self, action: str, subject, operator: bool = False):
        """Record the route's change in the tenant's audit trail (chalicelib/audit.py) once it succeeded."""
        return audit.audited(action, subject, self.as_operator if operator else self.as_tenant)

    def answer_whole(self, route: Any) -> Response:
        """POST /ai/chat and POST /v1/messages run here whole (chalice sends responses whole); deployed, API
        Gateway sends them to the streaming function instead (chalicelib/stream_host), which answers as
        produced."""
        return calls.answer(route, default_gateway(), self.tenant(), self.current_request, calls.BUFFERED)

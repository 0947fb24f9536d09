"""The authorizers: a credential becomes the caller's context once, here (chalicelib/identity/resolve.py).

They are a Blueprint named for `app` because Lambda runs them as `app.<name>` (the template's handlers,
dev/deploy/template.py): app.py registers this blueprint and names each function."""
from chalice import AuthResponse, Blueprint
from chalice.app import AuthRequest

from chalicelib.ai import messages_api
from chalicelib.errors import TesseraError
from chalicelib.identity.resolve import ResolvedCache, credential_header, resolve, resolve_operator
from chalicelib.web import unauthorized

authorizers = Blueprint("app")

# API Gateway caches a decision per token for AUTHORIZER_CACHE_SECONDS: a revoked key, a suspended tenant,
# a deleted user or a changed role takes effect within that time in deployed stages (at once locally).
# Without the cache every request would pay an authorizer invocation and a DynamoDB read.
AUTHORIZER_CACHE_SECONDS = 30


@authorizers.authorizer(ttl_seconds=AUTHORIZER_CACHE_SECONDS)
def tenant_auth(auth_request):
    try:
        ctx = resolve(auth_request.token)
    except TesseraError as error:
        anthropic_shape = messages_api.error_body(error) if messages_api.is_v1(auth_request.method_arn) else None
        raise unauthorized(error, anthropic_shape) from None
    return AuthResponse(routes=["*"], principal_id=ctx.principal_id, context=ctx.to_authorizer())


_request_auth_cache = ResolvedCache(AUTHORIZER_CACHE_SECONDS)


@authorizers.lambda_function(name="tenant_request_auth")
def tenant_request_auth(event, context):
    """The deployed tenant authorizer (a REQUEST authorizer, dev/deploy/package.py): it reads `Authorization` or
    Anthropic's `x-api-key`, which a TOKEN authorizer, reading one header, cannot. API Gateway cannot cache
    a decision keyed by either of two headers, so this keeps its own for AUTHORIZER_CACHE_SECONDS."""
    request = AuthRequest("REQUEST", credential_header(event.get("headers") or {}), event["methodArn"])
    try:
        ctx = _request_auth_cache.resolve(request.token)
    except TesseraError:
        raise Exception("Unauthorized") from None  # API Gateway's 401, in the gateway response's shape
    return AuthResponse(routes=["*"], principal_id=ctx.principal_id, context=ctx.to_authorizer()).to_dict(request)


@authorizers.authorizer(ttl_seconds=AUTHORIZER_CACHE_SECONDS)
def operator_auth(auth_request):
    try:
        operator_id = resolve_operator(auth_request.token)
    except TesseraError as error:
        raise unauthorized(error) from None
    return AuthResponse(routes=["*"], principal_id=operator_id, context={"operator_id": operator_id})

"""Anthropic's own API (/v1/*), for its SDKs and tools: messages, token counts, models, Message Batches, and
Files refused. Errors in Anthropic's shape."""
from chalice import Response

from chalicelib import tenants
from chalicelib.ai import batches, calls, files_api, messages_api, models_api
from chalicelib.ai.gateway import default_gateway
from chalicelib.routes import Routes
from chalicelib.web import base_url

routes = Routes(__name__)
tenant, query = routes.tenant, routes.query


def route(path, **kwargs):
    return routes.route(path, render=calls.anthropic_error, **kwargs)


def here():
    return base_url(routes.current_request)


@route("/v1/messages", methods=["POST"])
@routes.idempotent
def anthropic_messages():
    return routes.answer_whole(calls.MESSAGES)


@route("/v1/messages/count_tokens", methods=["POST"])
def anthropic_count_tokens():
    call = messages_api.parse_count(routes.body(messages_api.BODY_BYTES),
                                   messages_api.parse_betas(routes.current_request.headers))
    return messages_api.count_response(default_gateway().count_tokens(tenant(), messages_api.FEATURE, call))


@route("/v1/models", methods=["GET"])
def anthropic_models():
    return models_api.list_models(tenants.get_tenant(tenant().tenant_id), query("limit"), query("after_id"),
                                  query("before_id"))


@route("/v1/models/{model_id}", methods=["GET"])
def anthropic_model(model_id):
    return models_api.get_model(tenants.get_tenant(tenant().tenant_id), model_id)


# --- Message Batches ---------------------------------------------------------

@route("/v1/messages/batches", methods=["POST"])
@routes.idempotent
def anthropic_create_batch():
    return batches.create(default_gateway(), tenant(), routes.body(messages_api.BODY_BYTES), here())


@route("/v1/messages/batches", methods=["GET"])
def anthropic_list_batches():
    return batches.list_batches(default_gateway(), tenant().tenant_id, query("limit"), query("after_id"),
                                query("before_id"), here())


@route("/v1/messages/batches/{message_batch_id}", methods=["GET"])
def anthropic_batch(message_batch_id):
    return batches.retrieve(default_gateway(), tenant().tenant_id, message_batch_id, here())


@route("/v1/messages/batches/{message_batch_id}", methods=["DELETE"])
def anthropic_delete_batch(message_batch_id):
    return batches.delete(default_gateway(), tenant().tenant_id, message_batch_id)


@route("/v1/messages/batches/{message_batch_id}/cancel", methods=["POST"])
def anthropic_cancel_batch(message_batch_id):
    return batches.cancel(default_gateway(), tenant().tenant_id, message_batch_id, here())


@route("/v1/messages/batches/{message_batch_id}/results", methods=["GET"])
def anthropic_batch_results(message_batch_id):
    lines = batches.results(default_gateway(), tenant().tenant_id, message_batch_id)
    return Response(body=batches.jsonl(lines), headers={"Content-Type": "application/x-jsonl"})


# --- Files: refused for every tenant, after the credential is checked (chalicelib/ai/files_api.py says why) ----
# Only text content types: chalice refuses a route that mixes binary and text ones (the SDK uploads multipart).

@route("/v1/files", methods=["GET", "POST"], content_types=["application/json", "multipart/form-data"])
def anthropic_files():
    files_api.refuse()


@route("/v1/files/{file_id}", methods=["GET", "DELETE"])
def anthropic_file(file_id):
    files_api.refuse()


@route("/v1/files/{file_id}/content", methods=["GET"])
def anthropic_file_content(file_id):
    files_api.refuse()

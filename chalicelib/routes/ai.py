"""The AI features (/ai/*) and the tenant's own prompts (/prompts, the custom_prompts feature)."""
from chalice import Response

from chalicelib.ai import calls, features, prompts
from chalicelib.ai.gateway import default_gateway
from chalicelib.routes import Routes, no_content

routes = Routes(__name__)
tenant, idempotent, needs_feature = routes.tenant, routes.idempotent, routes.needs_feature
AI_BODY_BYTES = calls.AI_BODY_BYTES


@routes.route("/ai/chat", methods=["POST"])
@idempotent
def ai_chat():
    return routes.answer_whole(calls.CHAT)


@routes.route("/ai/code-review", methods=["POST"])
@idempotent
def ai_code_review():
    call = features.code_review(routes.body(AI_BODY_BYTES))
    return default_gateway().run(tenant(), "code_review", call).as_response()


@routes.route("/ai/document-analysis", methods=["POST"])
@idempotent
def ai_document_analysis():
    call = features.document_analysis(routes.body(AI_BODY_BYTES))
    return default_gateway().run(tenant(), "document_analysis", call).as_response()


@routes.route("/prompts", methods=["POST"])
@needs_feature("custom_prompts")
def create_prompt():
    ctx = tenant()
    ctx.require("admin")
    return Response(body=prompts.create_prompt(ctx.tenant_id, routes.body()), status_code=201)


@routes.route("/prompts", methods=["GET"])
@needs_feature("custom_prompts")
def list_prompts():
    return {"prompts": prompts.list_prompts(tenant().tenant_id)}


@routes.route("/prompts/{prompt_id}", methods=["GET"])
@needs_feature("custom_prompts")
def get_prompt(prompt_id):
    ctx = tenant()
    return prompts.view(prompts.get_prompt(ctx.tenant_id, prompt_id))


@routes.route("/prompts/{prompt_id}", methods=["PUT"])
@needs_feature("custom_prompts")
def update_prompt(prompt_id):
    ctx = tenant()
    ctx.require("admin")
    return prompts.update_prompt(ctx.tenant_id, prompt_id, routes.body())


@routes.route("/prompts/{prompt_id}", methods=["DELETE"])
@needs_feature("custom_prompts")
def delete_prompt(prompt_id):
    ctx = tenant()
    ctx.require("admin")
    prompts.delete_prompt(ctx.tenant_id, prompt_id)
    return no_content()


@routes.route("/prompts/{prompt_id}/run", methods=["POST"])
@needs_feature("custom_prompts")
@idempotent
def run_prompt(prompt_id):
    ctx = tenant()
    call = prompts.render(prompts.get_prompt(ctx.tenant_id, prompt_id), routes.body(AI_BODY_BYTES))
    return default_gateway().run(ctx, "custom_prompts", call).as_response()

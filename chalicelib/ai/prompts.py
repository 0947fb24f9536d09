"""Custom prompts: a tenant's named templates with `{{variable}}` placeholders.

A template is checked when saved: every `{{` must open a well-formed
placeholder. Running one needs exactly its variables: a missing or unknown
variable is a 400 before any model call.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping

from pynamodb.exceptions import DeleteError

from chalicelib import validation
from chalicelib.ai.features import MAX_TOTAL_CHARS, overrides
from chalicelib.ai.gateway import FeatureCall
from chalicelib.errors import BadRequest, NotFound, PayloadTooLarge
from chalicelib.ids import new_id
from chalicelib.models import Prompt, tenant_pk
from chalicelib.periods import isoformat, utcnow
from chalicelib.store import condition_failed, update_existing

MAX_TEMPLATE_CHARS = 20_000
MAX_VARIABLES = 20
MAX_VALUE_CHARS = 50_000
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")


def variables_of(template: str) -> List[str]:
    names: List[str] = []
    stripped = PLACEHOLDER.sub("", template)
    if "{{" in stripped or "}}" in stripped:
        raise BadRequest("The template has a malformed placeholder; use {{name}} with letters, digits and _.",
                         code="invalid_template")
    for name in PLACEHOLDER.findall(template):
        if name not in names:
            names.append(name)
    if len(names) > MAX_VARIABLES:
        raise BadRequest(f"A template may use at most {MAX_VARIABLES} variables.", code="invalid_template")
    return names


def view(prompt: Prompt) -> dict:
    return {"prompt_id": prompt.prompt_id, "name": prompt.name, "template": prompt.template,
            "variables": json.loads(prompt.variables), "created_at": isoformat(prompt.created_at),
            "updated_at": isoformat(prompt.updated_at)}


def _validated(body: Mapping[str, Any], partial: bool = False) -> Dict[str, Any]:
    validation.fields(body, {"name", "template"}, required=() if partial else ("name", "template"))
    out: Dict[str, Any] = {}
    if "name" in body:
        out["name"] = validation.string(body, "name", min_len=1, max_len=100).strip()
        if not out["name"]:
            raise BadRequest("name must not be blank.", code="invalid_field")
    if "template" in body:
        template = validation.string(body, "template", min_len=1, max_len=MAX_TEMPLATE_CHARS)
        out["template"] = template
        out["variables"] = json.dumps(variables_of(template))
    if not out:
        raise BadRequest("Nothing to update.", code="empty_update")
    return out


def create_prompt(tenant_id: str, body: Mapping[str, Any]) -> dict:
    values = _validated(body)
    now = utcnow()
    prompt_id = new_id("pmt")
    prompt = Prompt(tenant_pk(tenant_id), Prompt.sk_for(prompt_id), prompt_id=prompt_id, created_at=now,
                    updated_at=now, **values)
    prompt.save(condition=Prompt.pk.does_not_exist())
    return view(prompt)


def list_prompts(tenant_id: str) -> List[dict]:
    return [view(p) for p in Prompt.query(tenant_pk(tenant_id), Prompt.sk.startswith("PROMPT#"))]


def get_prompt(tenant_id: str, prompt_id: str) -> Prompt:
    try:
        return Prompt.get(tenant_pk(tenant_id), Prompt.sk_for(prompt_id))
    except Prompt.DoesNotExist:
        raise NotFound("Prompt not found.") from None


def update_prompt(tenant_id: str, prompt_id: str, body: Mapping[str, Any]) -> dict:
    values = _validated(body, partial=True)
    actions = [getattr(Prompt, name).set(value) for name, value in values.items()]
    prompt = update_existing(Prompt(tenant_pk(tenant_id), Prompt.sk_for(prompt_id)),
                             actions + [Prompt.updated_at.set(utcnow())], "Prompt")
    return view(prompt)


def delete_prompt(tenant_id: str, prompt_id: str) -> None:
    try:
        Prompt(tenant_pk(tenant_id), Prompt.sk_for(prompt_id)).delete(condition=Prompt.pk.exists())
    except DeleteError as error:
        if condition_failed(error):
            raise NotFound("Prompt not found.") from None
        raise


def render(prompt: Prompt, body: Mapping[str, Any]) -> FeatureCall:
    validation.fields(body, {"variables", "max_tokens", "temperature"}, required=("variables",))
    given = body["variables"]
    if not isinstance(given, dict):
        raise BadRequest("variables must be an object of name to string value.", code="invalid_field")
    expected = json.loads(prompt.variables)
    missing = [name for name in expected if name not in given]
    unknown = sorted(set(given) - set(expected))
    if missing or unknown:
        parts = ([f"missing: {', '.join(missing)}"] if missing else []) + \
                ([f"unknown: {', '.join(unknown)}"] if unknown else [])
        raise BadRequest(f"The variables do not match the template ({'; '.join(parts)}).", code="invalid_variables")
    for name, value in given.items():
        if not isinstance(value, str):
            raise BadRequest(f"Variable {name} must be a string.", code="invalid_variables")
        if len(value) > MAX_VALUE_CHARS:
            raise PayloadTooLarge(f"Variable {name} is longer than {MAX_VALUE_CHARS} characters.")
    rendered_chars = len(PLACEHOLDER.sub("", prompt.template)) + sum(
        len(given[m.group(1)]) for m in PLACEHOLDER.finditer(prompt.template))
    if rendered_chars > MAX_TOTAL_CHARS:
        raise PayloadTooLarge(f"The rendered prompt would be longer than {MAX_TOTAL_CHARS} characters.")
    text = PLACEHOLDER.sub(lambda m: given[m.group(1)], prompt.template)
    return FeatureCall(messages=[{"role": "user", "content": text}], **overrides(body))

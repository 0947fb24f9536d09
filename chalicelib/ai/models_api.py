"""`GET /v1/models` and `/v1/models/{model_id}`: the tenant's plan models in Anthropic's shape.

A page is `{"data", "has_more", "first_id", "last_id"}`, newest model first, paged with `limit`
(1-1000, default 20) and `after_id` / `before_id` as Anthropic's API pages. Release dates are not
tracked, so `created_at` is the epoch, which Anthropic's API reference allows when a date is unknown.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from chalicelib.errors import BadRequest, NotFound
from chalicelib.models import Tenant
from chalicelib.pricing import MODELS, ModelPrice

UNKNOWN_RELEASE = "1970-01-01T00:00:00Z"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def model_info(price: ModelPrice) -> Dict[str, Any]:
    return {"type": "model", "id": price.model, "display_name": price.display_name,
            "created_at": UNKNOWN_RELEASE, "lifecycle": "active"}


def _allowed(tenant: Tenant) -> List[ModelPrice]:
    from chalicelib import plan_catalog

    plan = plan_catalog.require(tenant.plan)
    return [price for price in MODELS.values() if plan.allows_model(price.model)]


def get_model(tenant: Tenant, model_id: str) -> Dict[str, Any]:
    for price in _allowed(tenant):
        if price.model == model_id:
            return model_info(price)
    raise NotFound(f"model: {model_id} is not available to this tenant.", code="model_not_found")


def list_models(tenant: Tenant, limit: Optional[str], after_id: Optional[str],
                before_id: Optional[str]) -> Dict[str, Any]:
    if after_id and before_id:
        raise BadRequest("Send after_id or before_id, not both.", code="invalid_cursor")
    size = _limit(limit)
    models = _allowed(tenant)
    ids = [price.model for price in models]
    if after_id:
        start = _position(ids, after_id, "after_id") + 1
        page = models[start:start + size]
        has_more = start + size < len(models)
    elif before_id:
        end = _position(ids, before_id, "before_id")
        page = models[max(0, end - size):end]
        has_more = end - size > 0
    else:
        page, has_more = models[:size], size < len(models)
    data = [model_info(price) for price in page]
    return {"data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def _limit(raw: Optional[str]) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}.", code="invalid_limit")
    return int(raw)


def _position(ids: List[str], model_id: str, name: str) -> int:
    if model_id not in ids:
        raise BadRequest(f"{name} names no model in this list.", code="invalid_cursor")
    return ids.index(model_id)

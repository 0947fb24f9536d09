"""The tenant-aware path of every AI call: settings, admission, the model call, settlement.

    load tenant + AI settings (one BatchGetItem, cached a few seconds)
    -> plan gate -> build the call from the tenant's settings
    -> before-call: reserve quota, rate and worst-case cost (one transaction)
    -> the model call with the tenant's own key or the platform pool
    -> after-call: settle the actual usage and cost (one transaction), or release on failure

Only the caller's own tenant is ever loaded, so nothing about another tenant
can reach a prompt.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, Dict, List, Optional, Tuple

from chalicelib import pricing
from chalicelib.ai.client import ModelCall, ModelClient, ModelReply
from chalicelib.ai.tenant_keys import TenantKeyVault
from chalicelib.errors import BadRequest, Forbidden, NotFound
from chalicelib.ids import new_request_id
from chalicelib.logs import get_logger
from chalicelib.metering import ledger
from chalicelib.models import AIConfig, Tenant, tenant_pk
from chalicelib.plans import FEATURES, PLANS, feature_enabled, feature_limit, requests_per_minute
from chalicelib.secrets import platform_api_keys
from chalicelib.settings import get_settings
from chalicelib.store import get_items
from chalicelib.tenancy import TenantContext

log = get_logger("gateway")

# Tokens a message's framing can add beyond its text; keeps the estimate an upper bound.
_OVERHEAD_TOKENS = 16
_PER_MESSAGE_TOKENS = 8


@dataclass(frozen=True)
class TenantAI:
    tenant: Tenant
    config: AIConfig


@dataclass(frozen=True)
class FeatureCall:
    """What a feature asks of the model, before the tenant's settings apply."""

    messages: List[Dict[str, Any]]
    system: Optional[str] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    model: Optional[str] = None
    stop_sequences: Optional[List[str]] = None
    metadata: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class GatewayResult:
    request_id: str
    reply: ModelReply
    cost_micros: int

    def as_response(self) -> dict:
        return {"id": self.request_id, "content": self.reply.text, "model": self.reply.model,
                "stop_reason": self.reply.stop_reason, "usage": self.reply.usage.as_dict(),
                "cost_usd": pricing.usd(self.cost_micros)}


class TenantCache:
    """Tenant profile + AI settings for a few seconds in the warm Lambda (TESSERA_TENANT_CACHE_SECONDS)."""

    def __init__(self) -> None:
        self._entries: Dict[str, Tuple[float, TenantAI]] = {}
        self._lock = threading.Lock()

    def load(self, tenant_id: str) -> TenantAI:
        ttl = get_settings().tenant_cache_seconds
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(tenant_id)
        if hit and hit[0] > now:
            return hit[1]
        pk = tenant_pk(tenant_id)
        tenant, config = get_items([(Tenant, pk, Tenant.SK), (AIConfig, pk, AIConfig.SK)])
        if tenant is None or config is None:
            raise NotFound("Tenant not found.")
        state = TenantAI(tenant, config)
        if ttl > 0:
            with self._lock:
                self._entries[tenant_id] = (now + ttl, state)
        return state

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._entries.pop(tenant_id, None)


def _text_bytes(content: Any) -> int:
    if isinstance(content, str):
        return len(content.encode("utf-8"))
    if isinstance(content, list):
        return sum(_text_bytes(block.get("text", "")) for block in content if isinstance(block, dict))
    return 0


def worst_case_micros(model: str, system: Optional[str], messages: List[Dict[str, Any]], max_tokens: int) -> int:
    """An upper bound on a call's cost: no token is shorter than one UTF-8 byte."""
    price = pricing.MODELS[model]
    input_tokens = (_OVERHEAD_TOKENS + _text_bytes(system or "")
                    + sum(_PER_MESSAGE_TOKENS + _text_bytes(m.get("content")) for m in messages))
    exact = Decimal(input_tokens) * price.input + Decimal(max_tokens) * price.output
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def tenant_system_prompt(state: TenantAI, given: Optional[str]) -> Optional[str]:
    """The tenant's context and instructions first (when enabled), then the feature's or caller's system text."""
    parts = []
    config = state.config
    if config.inject_context:
        parts.append(f"You are assisting the team at {state.tenant.name}.")
        if config.custom_instructions:
            parts.append(config.custom_instructions)
    if given:
        parts.append(given)
    return "\n\n".join(parts) if parts else None


class Gateway:
    def __init__(self, model_client: Optional[ModelClient] = None, vault: Optional[TenantKeyVault] = None,
                 cache: Optional[TenantCache] = None) -> None:
        self.model_client = model_client or ModelClient()
        self.vault = vault or TenantKeyVault()
        self.cache = cache or TenantCache()
        self._plain_keys: Dict[Tuple[str, str], Tuple[float, str]] = {}

    def tenant_state(self, tenant_id: str) -> TenantAI:
        return self.cache.load(tenant_id)

    def require_feature(self, state: TenantAI, feature: str) -> None:
        if not feature_enabled(state.tenant.plan, feature):
            needed = FEATURES[feature].plan
            raise Forbidden(f"{feature} is not in the {state.tenant.plan} plan; it needs the {needed} plan.",
                            code="feature_not_in_plan", details={"feature": feature, "required_plan": needed})

    def settings_changed(self, tenant_id: str) -> None:
        """Drop this instance's cached copy; other warm instances see the change within the cache TTL."""
        self.cache.forget(tenant_id)

    def require_plan_feature(self, tenant_id: str, feature: str) -> None:
        self.require_feature(self.tenant_state(tenant_id), feature)

    def build_call(self, state: TenantAI, call: FeatureCall) -> ModelCall:
        config = state.config
        model = call.model or config.model
        if model not in pricing.MODELS or not pricing.model_allowed(model, state.tenant.plan):
            raise BadRequest(f"The model '{model}' is not available to this tenant. GET /models lists them.",
                             code="invalid_model")
        ceiling = min(int(config.max_tokens), PLANS[state.tenant.plan].max_tokens_cap)
        max_tokens = min(call.max_tokens, ceiling) if call.max_tokens else ceiling
        temperature = call.temperature if call.temperature is not None else float(config.temperature)
        return ModelCall(model=model, max_tokens=max_tokens, temperature=temperature, messages=call.messages,
                         system=tenant_system_prompt(state, call.system), stop_sequences=call.stop_sequences,
                         metadata=call.metadata)

    def _api_key(self, state: TenantAI) -> Tuple[str, bool]:
        ciphertext = state.config.api_key_ciphertext
        if ciphertext is None:
            pool = platform_api_keys()
            index = int(hashlib.sha256(state.tenant.tenant_id.encode()).hexdigest(), 16) % len(pool)
            return pool[index], False
        # Keyed by tenant and ciphertext: a copy of another tenant's ciphertext must reach KMS, whose
        # encryption context (the tenant id) refuses it, rather than find that tenant's decrypted key here.
        cache_key = (state.tenant.tenant_id, hashlib.sha256(ciphertext).hexdigest())
        hit = self._plain_keys.get(cache_key)
        if hit and hit[0] > time.monotonic():
            return hit[1], True
        plain = self.vault.decrypt(state.tenant.tenant_id, ciphertext)
        self._plain_keys[cache_key] = (time.monotonic() + get_settings().tenant_cache_seconds, plain)
        return plain, True

    def limits(self, state: TenantAI, feature: str) -> ledger.Limits:
        tenant = state.tenant
        overrides = tenant.limit_overrides.as_dict() if tenant.limit_overrides else {}
        budget = tenant.monthly_budget_micros
        return ledger.Limits(feature_limit=feature_limit(feature, overrides),
                             requests_per_minute=requests_per_minute(tenant.plan, overrides),
                             budget_micros=int(budget) if budget is not None else None,
                             hard_limit=bool(tenant.budget_hard_limit))

    @staticmethod
    def _release(reservation: ledger.Reservation) -> None:
        """Give the reservation back; a failure here must not hide the upstream error being raised."""
        try:
            ledger.release(reservation)
        except Exception as error:
            log.error("reservation not released", extra={"fields": {
                "request_id": reservation.request_id, "feature": reservation.feature, "period": reservation.period,
                "worst_case_micros": reservation.worst_case_micros, "error": type(error).__name__}})

    @staticmethod
    def _settle(reservation: ledger.Reservation, settlement: ledger.Settlement) -> None:
        """Record the call. The model has answered and been paid for, so the caller gets the answer even if
        recording fails after retries; the reservation then keeps holding the worst case, and this line
        carries what an operator needs to record it by hand."""
        try:
            ledger.settle(reservation, settlement)
        except Exception as error:
            log.error("usage not settled", extra={"fields": {
                "request_id": reservation.request_id, "feature": reservation.feature, "period": reservation.period,
                "model": settlement.model, "input_tokens": settlement.input_tokens,
                "output_tokens": settlement.output_tokens, "cost_micros": settlement.cost_micros,
                "worst_case_micros": reservation.worst_case_micros, "key_source":
                    "tenant" if settlement.own_key else "platform", "error": type(error).__name__}})

    def run(self, ctx: TenantContext, feature: str, call: FeatureCall) -> GatewayResult:
        state = self.tenant_state(ctx.tenant_id)
        self.require_feature(state, feature)
        model_call = self.build_call(state, call)
        api_key, own_key = self._api_key(state)
        request_id = new_request_id()
        worst = worst_case_micros(model_call.model, model_call.system, model_call.messages, model_call.max_tokens)
        reservation = ledger.reserve(ctx.tenant_id, request_id, feature, self.limits(state, feature), worst)
        try:
            reply = self.model_client.complete(model_call, api_key, own_key)
        except BaseException:
            self._release(reservation)
            raise
        usage = reply.usage
        cost = pricing.cost_micros(model_call.model, usage.input_tokens, usage.output_tokens,
                                   usage.cache_creation_tokens, usage.cache_read_tokens)
        settlement = ledger.Settlement(
            principal_id=ctx.principal_id, principal_type=ctx.principal_type, model=model_call.model,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_creation_tokens=usage.cache_creation_tokens, cache_read_tokens=usage.cache_read_tokens,
            cost_micros=cost, latency_ms=reply.latency_ms, own_key=own_key,
            upstream_request_id=reply.upstream_request_id)
        self._settle(reservation, settlement)
        log.info("model call", extra={"fields": {"feature": feature, "model": model_call.model,
                                                 "input_tokens": usage.input_tokens,
                                                 "output_tokens": usage.output_tokens, "cost_micros": cost,
                                                 "latency_ms": reply.latency_ms,
                                                 "key_source": "tenant" if own_key else "platform"}})
        return GatewayResult(request_id, reply, cost)


_default: Optional[Gateway] = None


def default_gateway() -> Gateway:
    """The warm Lambda's gateway: one model client, vault and tenant cache, built on first use."""
    global _default
    if _default is None:
        _default = Gateway()
    return _default

"""The tenant-aware path of every AI call: settings, admission, the model call, settlement.

Each call, whole or streamed (chalicelib/ai/streaming.py), takes the same steps:

    prepare: tenant + AI settings (one BatchGetItem, cached a few seconds), plan gate, the call built
             from the tenant's settings, the key, the worst-case cost (chalicelib/ai/bounds.py)
    admit:   reserve quota, rate and worst-case cost (ledger.reserve)
    the model call with the tenant's own key or the platform pool
    finish:  settle the exact usage and cost (ledger.settle), or
    fail:    give the reservation back (ledger.release)

`admit`, `finish` and `fail` are the only places that call the ledger. Only the caller's own
tenant is ever loaded, so nothing about another tenant can reach a prompt.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from chalicelib import pricing
from chalicelib.ai import bounds
from chalicelib.ai.client import ModelCall, ModelClient, ModelReply, System, Usage
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


@dataclass(frozen=True)
class TenantAI:
    tenant: Tenant
    config: AIConfig


@dataclass(frozen=True)
class FeatureCall:
    """What a feature asks of the model, before the tenant's settings apply."""

    messages: List[Dict[str, Any]]
    system: System = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    model: Optional[str] = None
    params: Mapping[str, Any] = field(default_factory=dict)  # passed through to the model unchanged


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


def tenant_system_prompt(state: TenantAI, given: System) -> System:
    """The tenant's context and instructions first (when enabled), then the feature's or caller's system.
    A caller's list of blocks stays as given (its cache_control included), after a block of the tenant's."""
    parts = []
    config = state.config
    if config.inject_context:
        parts.append(f"You are assisting the team at {state.tenant.name}.")
        if config.custom_instructions:
            parts.append(config.custom_instructions)
    if isinstance(given, list):
        return ([{"type": "text", "text": "\n\n".join(parts)}] if parts else []) + given or None
    if given:
        parts.append(given)
    return "\n\n".join(parts) if parts else None


@dataclass(frozen=True)
class PreparedCall:
    """A call ready to admit: whose it is, what goes upstream with which key, and the most it can cost."""

    ctx: TenantContext
    feature: str
    request_id: str
    model_call: ModelCall
    api_key: str = field(repr=False)
    own_key: bool
    limits: ledger.Limits
    worst_case_micros: int


class Gateway:
    def __init__(self, model_client: Optional[ModelClient] = None, vault: Optional[TenantKeyVault] = None,
                 cache: Optional[TenantCache] = None) -> None:
        self.model_client = model_client or ModelClient()
        self.vault = vault or TenantKeyVault()
        self.cache = cache or TenantCache()
        self._plain_keys: Dict[str, Tuple[float, str]] = {}

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
        thinking = call.params.get("thinking") or {}
        budget = thinking.get("budget_tokens")
        if thinking.get("type") == "enabled" and isinstance(budget, int) and budget >= max_tokens:
            raise BadRequest(f"thinking.budget_tokens must be less than max_tokens, which is {max_tokens} for this "
                             "tenant.", code="invalid_field")
        # Thinking takes no temperature but the default; the tenant's setting applies to calls without it.
        temperature = call.temperature
        if temperature is None and thinking.get("type") not in ("enabled", "adaptive"):
            temperature = float(config.temperature)
        return ModelCall(model=model, max_tokens=max_tokens, temperature=temperature, messages=call.messages,
                         system=tenant_system_prompt(state, call.system), params=call.params)

    def _api_key(self, state: TenantAI) -> Tuple[str, bool]:
        ciphertext = state.config.api_key_ciphertext
        if ciphertext is None:
            pool = platform_api_keys()
            index = int(hashlib.sha256(state.tenant.tenant_id.encode()).hexdigest(), 16) % len(pool)
            return pool[index], False
        digest = hashlib.sha256(ciphertext).hexdigest()
        hit = self._plain_keys.get(digest)
        if hit and hit[0] > time.monotonic():
            return hit[1], True
        plain = self.vault.decrypt(state.tenant.tenant_id, ciphertext)
        self._plain_keys[digest] = (time.monotonic() + get_settings().tenant_cache_seconds, plain)
        return plain, True

    def limits(self, state: TenantAI, feature: str) -> ledger.Limits:
        tenant = state.tenant
        overrides = tenant.limit_overrides.as_dict() if tenant.limit_overrides else {}
        budget = tenant.monthly_budget_micros
        return ledger.Limits(feature_limit=feature_limit(feature, overrides),
                             requests_per_minute=requests_per_minute(tenant.plan, overrides),
                             budget_micros=int(budget) if budget is not None else None,
                             hard_limit=bool(tenant.budget_hard_limit))

    # --- the steps every call takes -------------------------------------------------------------

    def prepare(self, ctx: TenantContext, feature: str, call: FeatureCall) -> PreparedCall:
        state = self.tenant_state(ctx.tenant_id)
        self.require_feature(state, feature)
        model_call = self.build_call(state, call)
        api_key, own_key = self._api_key(state)
        counted = (self.model_client.count_tokens(model_call, api_key, own_key)
                   if bounds.needs_upstream_count(model_call) else None)
        return PreparedCall(ctx=ctx, feature=feature, request_id=new_request_id(), model_call=model_call,
                            api_key=api_key, own_key=own_key, limits=self.limits(state, feature),
                            worst_case_micros=bounds.worst_case_micros(model_call, counted))

    @staticmethod
    def admit(prepared: PreparedCall) -> ledger.Reservation:
        return ledger.reserve(prepared.ctx.tenant_id, prepared.request_id, prepared.feature, prepared.limits,
                              prepared.worst_case_micros)

    def finish(self, prepared: PreparedCall, reservation: ledger.Reservation, usage: Usage, latency_ms: int,
               upstream_request_id: Optional[str], status: str = "ok") -> int:
        """Settle the call at its exact cost; returns that cost in micro-dollars."""
        model = prepared.model_call.model
        cost = pricing.cost_micros(model, usage.input_tokens, usage.output_tokens, usage.cache_creation_tokens,
                                   usage.cache_read_tokens, usage.cache_creation_1h_tokens)
        ctx = prepared.ctx
        settlement = ledger.Settlement(
            principal_id=ctx.principal_id, principal_type=ctx.principal_type, model=model,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_creation_tokens=usage.cache_creation_tokens, cache_read_tokens=usage.cache_read_tokens,
            cost_micros=cost, latency_ms=latency_ms, own_key=prepared.own_key, status=status,
            upstream_request_id=upstream_request_id)
        try:
            ledger.settle(reservation, settlement)
        except Exception as error:
            # The model has answered and been paid for, so the caller gets the answer even if recording
            # fails after retries; the reservation then keeps holding the worst case, and this line
            # carries what an operator needs to record it by hand.
            log.error("usage not settled", extra={"fields": {
                "request_id": reservation.request_id, "feature": reservation.feature, "period": reservation.period,
                "model": model, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                "cost_micros": cost, "worst_case_micros": reservation.worst_case_micros,
                "key_source": "tenant" if prepared.own_key else "platform", "error": type(error).__name__}})
        if cost > reservation.worst_case_micros:
            log.error("cost above its reservation", extra={"fields": {
                "request_id": reservation.request_id, "cost_micros": cost,
                "worst_case_micros": reservation.worst_case_micros}})
        log.info("model call", extra={"fields": {"feature": prepared.feature, "model": model,
                                                 "input_tokens": usage.input_tokens,
                                                 "output_tokens": usage.output_tokens, "cost_micros": cost,
                                                 "latency_ms": latency_ms, "status": status,
                                                 "key_source": "tenant" if prepared.own_key else "platform"}})
        return cost

    @staticmethod
    def fail(reservation: ledger.Reservation) -> None:
        """Give the reservation back; a failure here must not hide the upstream error being raised."""
        try:
            ledger.release(reservation)
        except Exception as error:
            log.error("reservation not released", extra={"fields": {
                "request_id": reservation.request_id, "feature": reservation.feature, "period": reservation.period,
                "worst_case_micros": reservation.worst_case_micros, "error": type(error).__name__}})

    # --- whole responses and token counts --------------------------------------------------------

    def run(self, ctx: TenantContext, feature: str, call: FeatureCall) -> GatewayResult:
        prepared = self.prepare(ctx, feature, call)
        reservation = self.admit(prepared)
        try:
            reply = self.model_client.complete(prepared.model_call, prepared.api_key, prepared.own_key)
        except BaseException:
            self.fail(reservation)
            raise
        cost = self.finish(prepared, reservation, reply.usage, reply.latency_ms, reply.upstream_request_id)
        return GatewayResult(prepared.request_id, reply, cost)

    def count_tokens(self, ctx: TenantContext, feature: str, call: FeatureCall) -> int:
        """Upstream's token count for the call as the tenant's settings shape it: not admitted, not billed."""
        state = self.tenant_state(ctx.tenant_id)
        self.require_feature(state, feature)
        model_call = self.build_call(state, call)
        api_key, own_key = self._api_key(state)
        return self.model_client.count_tokens(model_call, api_key, own_key)


_default: Optional[Gateway] = None


def default_gateway() -> Gateway:
    """The warm Lambda's gateway: one model client, vault and tenant cache, built on first use."""
    global _default
    if _default is None:
        _default = Gateway()
    return _default

"""The tenant-aware path of every AI call: settings, admission, the model call, its usage event.

Each call, whole or streamed (chalicelib/ai/streaming.py), takes the same steps:

    prepare: tenant, AI settings, admission item, reconciliation and the plan's current item (one
             BatchGetItem, kept a few seconds), the plan gate and limits from the admission item's copy
             (current by its version) under the plan,
             the call built from the tenant's settings, the key, the worst-case cost (chalicelib/ai/bounds.py)
    admit:   quota, rate and worst-case cost in one conditional UpdateItem (metering.admission)
    the model call with the tenant's own key or the platform pool
    finish:  one usage event with the exact usage and cost (ledger.record), or
    fail:    one usage event saying the call failed (never billed; its quota and worst case then go
             back to the admission item in one more write, before the answer) or is indeterminate
             (may have been billed)

`admit`, `finish` and `fail` are the only places that call the ledger; a warm request makes two
DynamoDB calls. Only the caller's own tenant is ever loaded, so nothing about another tenant can
reach a prompt.
"""
from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from chalicelib import observability, plan_catalog, pricing
from chalicelib.ai import bounds, brownout
from chalicelib.ai.client import ModelCall, ModelClient, ModelReply, System, Usage
from chalicelib.ai.failover import Failover, Served
from chalicelib.ai.tenant_keys import TenantKeyVault
from chalicelib.errors import BadRequest, NotFound, TesseraError
from chalicelib.ids import new_request_id
from chalicelib.logs import get_logger
from chalicelib.budget_models import PrincipalBudget
from chalicelib.metering import admission, counter_keys, ledger, pool, principal_admission, refusals
from chalicelib.metering.pool_leases import PoolLeases, PoolTicket, parse_ceilings
from chalicelib.metering.limits import AdmissionLimits, TenantLimits
from chalicelib.models import Admission, AIConfig, Reconciliation, Tenant, tenant_pk
from chalicelib.plans import DEFAULT_PLAN, Plan
from chalicelib.secrets import platform_api_keys
from chalicelib.settings import DEFAULT_POOL_CEILINGS, get_settings
from chalicelib.store import get_items
from chalicelib.tenancy import TenantContext

log = get_logger("gateway")


@dataclass(frozen=True)
class TenantAI:
    tenant: Tenant
    config: AIConfig
    plan: Plan  # the plan the tenant is on, as it stood when read
    view: Optional[admission.AdmissionView] = None
    returns: admission.Returns = admission.Returns()

    @property
    def own_limits(self) -> TenantLimits:
        """The tenant's own numbers: the admission item's copy when there is one."""
        if self.view is not None and self.view.limits is not None:
            return self.view.limits
        return TenantLimits.of(self.tenant)

    @property
    def limits(self) -> AdmissionLimits:
        """The limits admission enforces: the tenant's numbers under its plan."""
        return self.own_limits.under(self.plan_of(self.own_limits.plan))

    def plan_of(self, name: str) -> Plan:
        """The plan named, as read with the tenant's items when it is that one (a plan change since then
        reads the catalog)."""
        return self.plan if name == self.plan.name else plan_catalog.require(name)

    def with_view(self, view: Optional[admission.AdmissionView], plan: Optional[Plan] = None) -> "TenantAI":
        return TenantAI(self.tenant, self.config, plan or self.plan, view, self.returns)

    def fresh(self) -> "TenantAI":
        """This state with the admission item and the plan read again, consistently, in one BatchGetItem:
        what a refusal is confirmed against, so a limit an operator raised (on the tenant or on its plan)
        holds for the very next request."""
        tenant_id, hint = self.tenant.tenant_id, self.own_limits.plan
        item, record = get_items([(Admission, tenant_pk(tenant_id), Admission.SK), plan_catalog.current_ref(hint)],
                                 consistent=True)
        view = admission.AdmissionView.from_item(item)
        name = view.limits.plan if view is not None and view.limits is not None else hint
        return self.with_view(view, plan_catalog.from_record(name, record) if name == hint
                              else plan_catalog.require(name))


@dataclass(frozen=True)
class FeatureCall:
    """What a feature asks of the model, before the tenant's settings apply."""

    messages: List[Dict[str, Any]]
    system: System = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    model: Optional[str] = None
    params: Mapping[str, Any] = field(default_factory=dict)  # passed through to the model unchanged
    # Whose default a sampling field the caller omits takes: the tenant's settings (Tessera's own feature
    # routes) or Anthropic's (the Messages API, unless the tenant's admin chose a value: AIConfig.chosen).
    sampling_defaults: str = "tenant"
    betas: Tuple[str, ...] = ()  # the client's `anthropic-beta` header, forwarded


ANTHROPIC_DEFAULTS = "anthropic"
BROWNOUT_KEEPS = frozenset({"thinking", "output_config"})  # a call with these is never browned out


@dataclass(frozen=True)
class GatewayResult:
    request_id: str
    reply: ModelReply
    cost_micros: int
    requested_model: Optional[str] = None  # the model asked, when a brownout served another
    served_model: Optional[str] = None  # ours (a provider may echo another id for the same model)

    @property
    def brownout_headers(self) -> Dict[str, str]:
        served = self.served_model or self.reply.model
        return brownout.headers(self.requested_model or served, served)

    def as_response(self) -> dict:
        return {"id": self.request_id, "content": self.reply.text, "model": self.reply.model,
                "stop_reason": self.reply.stop_reason, "usage": self.reply.usage.as_dict(),
                "cost_usd": pricing.usd(self.cost_micros)}


class TenantCache:
    """Tenant profile, AI settings, admission item and reconciliation for a few seconds in the warm Lambda
    (TESSERA_TENANT_CACHE_SECONDS). Only settings (model, instructions, key) may be that old when used:
    limits are proven current by the admission write itself, and every admission's returned item
    replaces the cached view, so the view is usually as fresh as this instance's last call. The plan's
    current item is read in the same BatchGetItem (its name as the authorizer saw it; a second read only
    when the tenant has moved plan since), so an operator's plan edit holds on this instance within
    the TTL (chalicelib/plan_catalog.py)."""


    def __init__(self) -> None:
        self._entries: Dict[str, Tuple[float, TenantAI]] = {}
        self._terms: Dict[Tuple[str, str], Tuple[float, principal_admission.PrincipalCharge]] = {}
        self._lock = threading.Lock()

    def charge(self, tenant_id: str, principal_id: str) -> principal_admission.PrincipalCharge:
        """The caller with its budget as last read here (within the TTL). Admission's transaction checks the
        budget's version, so an old copy can only make it read again, never admit wrongly."""
        with self._lock:
            hit = self._terms.get((tenant_id, principal_id))
        known = hit is not None and hit[0] > time.monotonic()
        return principal_admission.PrincipalCharge(
            principal_id, load=lambda: principal_admission.load_terms(tenant_id, principal_id),
            terms=hit[1].terms if known else None, loaded=known and hit[1].loaded,
            seen_version=hit[1].seen_version if known else None)

    def remember_terms(self, tenant_id: str, charge: principal_admission.PrincipalCharge) -> None:
        with self._lock:
            self._terms[(tenant_id, charge.principal_id)] = (
                time.monotonic() + get_settings().tenant_cache_seconds, charge)

    def load(self, tenant_id: str, plan_hint: str = "", principal_id: str = "") -> TenantAI:
        ttl = get_settings().tenant_cache_seconds
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(tenant_id)
        if hit and hit[0] > now:
            return hit[1]
        pk = tenant_pk(tenant_id)
        hint = plan_hint or DEFAULT_PLAN
        budget = [(PrincipalBudget, pk, PrincipalBudget.sk_for(principal_id))] if principal_id else []
        tenant, config, item, reconciled, plan_record, *terms = get_items([
            (Tenant, pk, Tenant.SK), (AIConfig, pk, AIConfig.SK), (Admission, pk, Admission.SK),
            (Reconciliation, pk, Reconciliation.SK), plan_catalog.current_ref(hint)] + budget)
        if principal_id:  # the caller's own budget, if it has one, in the same read (none: confirmed if marked)
            self.remember_terms(tenant_id, principal_admission.PrincipalCharge(
                principal_id, load=lambda: None, terms=principal_admission.BudgetTerms.from_item(terms[0]),
                loaded=terms[0] is not None))
        if tenant is None or config is None:
            raise NotFound("Tenant not found.")
        view = admission.AdmissionView.from_item(item)
        name = view.limits.plan if view is not None and view.limits is not None else tenant.plan
        plan = plan_catalog.from_record(name, plan_record) if name == hint else plan_catalog.require(name)
        state = TenantAI(tenant, config, plan, view, admission.Returns.from_item(reconciled))
        if ttl > 0:
            with self._lock:
                self._entries[tenant_id] = (now + ttl, state)
        return state

    def remember(self, tenant_id: str, view: admission.AdmissionView, plan: Optional[Plan] = None) -> None:
        """Keep the admission item as this instance's last write left it (and the plan, if read since)."""
        with self._lock:
            hit = self._entries.get(tenant_id)
            if hit is not None:
                self._entries[tenant_id] = (hit[0], hit[1].with_view(view, plan))

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._entries.pop(tenant_id, None)


def granted_max_tokens(asked: Optional[int], tenant_default: int, plan: Plan) -> int:
    """max_tokens as served, never lowered: what the caller asked, up to the plan's cap (above it, a 400
    naming the cap); the tenant's setting only when the caller says nothing (Tessera's feature routes)."""
    cap = plan.max_tokens_cap
    if asked is None:
        return min(tenant_default, cap)
    if asked > cap:
        raise BadRequest(f"max_tokens: {asked} is above the {plan.name} plan's cap of {cap}. Ask for {cap} or fewer.",
                         code="max_tokens_above_cap", details={"max_tokens_cap": cap})
    return asked


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
    state: TenantAI = field(repr=False)
    worst_case_micros: int
    requested_model: str = ""  # the model asked; model_call.model is the one that serves (brownout)
    input_bound: int = 0  # the most input tokens the call can be counted for (its pool reservation)

    @property
    def brownout_headers(self) -> Dict[str, str]:
        return brownout.headers(self.requested_model or self.model_call.model, self.model_call.model)


class Gateway:
    def __init__(self, model_client: Optional[ModelClient] = None, vault: Optional[TenantKeyVault] = None,
                 cache: Optional[TenantCache] = None, failover: Optional[Failover] = None,
                 pool_leases: Optional[PoolLeases] = None) -> None:
        self.model_client = model_client or ModelClient()
        # The route of each call: Anthropic with this client, a retry, Bedrock for pool calls
        self.failover = failover or Failover(self.model_client)
        self.vault = vault or TenantKeyVault()
        self.cache = cache or TenantCache()
        self._plain_keys: Dict[Tuple[str, str], Tuple[float, str]] = {}
        self._pool_leases = pool_leases
        # what the organisation has left, as each pool call's answer reports it, corrects the pool's ceilings
        self.model_client.pool_rate_limits = lambda model, headers: self.pool_leases.observe(model, headers)
        self._pool_tickets: Dict[str, PoolTicket] = {}  # by request id, from admit until the call settles

    def tenant_state(self, tenant_id: str, plan_hint: str = "", principal_id: str = "") -> TenantAI:
        return self.cache.load(tenant_id, plan_hint, principal_id)

    def require_feature(self, state: TenantAI, feature: str) -> TenantAI:
        """Refuse a feature the plan lacks, confirming a refusal against the admission item first (the
        plan may have changed since this instance last looked). Returns the state the check used."""
        for fresh in (False, True):
            if fresh:
                state = state.fresh()
            error = state.limits.gate(feature)
            if error is None:
                return state
        raise error

    def settings_changed(self, tenant_id: str) -> None:
        """Drop this instance's cached copy; other warm instances see the change within the cache TTL."""
        self.cache.forget(tenant_id)

    def require_plan_feature(self, tenant_id: str, feature: str) -> None:
        self.require_feature(self.tenant_state(tenant_id), feature)

    def build_call(self, state: TenantAI, call: FeatureCall, feature: str = "") -> ModelCall:
        config = state.config
        plan = state.plan_of(state.own_limits.plan)
        model = call.model or config.model
        if not plan.allows_model(model) and call.model is None and plan.models:
            # The tenant's setting names a model its plan no longer offers (an operator edited the plan): the
            # plan's default serves, and the answer's requested/served model headers say so.
            model = pricing.DEFAULT_MODEL if plan.allows_model(pricing.DEFAULT_MODEL) else plan.models[0]
        if not plan.allows_model(model):
            raise NotFound(f"model: {model} is not available to this tenant. GET /v1/models lists them.",
                           code="model_not_found")
        max_tokens = granted_max_tokens(call.max_tokens, int(config.max_tokens), plan)
        served = served_model(state, feature, model, plan)
        # A call the cheaper model might not take is served as asked: more output than it writes, or thinking
        # and effort settings, which models accept differently (an upstream 400 would be brownout's doing).
        if pricing.MODELS[served].max_output_tokens >= max_tokens and not BROWNOUT_KEEPS.intersection(call.params):
            model = served
        thinking = call.params.get("thinking") or {}
        budget = thinking.get("budget_tokens")
        if thinking.get("type") == "enabled" and isinstance(budget, int) and budget >= max_tokens:
            raise BadRequest(f"thinking.budget_tokens ({budget}) must be less than max_tokens ({max_tokens}).",
                             code="invalid_field")
        # Thinking takes no temperature but the default.
        temperature = call.temperature
        if temperature is None and thinking.get("type") not in ("enabled", "adaptive") and (
                call.sampling_defaults != ANTHROPIC_DEFAULTS or "temperature" in (config.chosen or ())):
            temperature = float(config.temperature)
        return ModelCall(model=model, max_tokens=max_tokens, temperature=temperature, messages=call.messages,
                         system=tenant_system_prompt(state, call.system), params=call.params, betas=call.betas)

    def api_key_for(self, state: TenantAI) -> Tuple[str, bool]:
        """The key a tenant's calls use, and whether it is the tenant's own (decrypted, then kept for the tenant
        cache's time) or one of the platform pool's (chosen by the tenant id, so always the same one)."""
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

    # --- the steps every call takes -------------------------------------------------------------

    def prepare(self, ctx: TenantContext, feature: str, call: FeatureCall) -> PreparedCall:
        try:
            state = self.require_feature(self.tenant_state(ctx.tenant_id, ctx.plan, ctx.principal_id), feature)
        except TesseraError as error:
            raise refusals.counted(ctx.tenant_id, error)
        model_call = self.build_call(state, call, feature)
        api_key, own_key = self.api_key_for(state)
        counted = (self.model_client.count_tokens(model_call, api_key, own_key)
                   if bounds.needs_upstream_count(model_call) else None)
        return PreparedCall(ctx=ctx, feature=feature, request_id=new_request_id(), model_call=model_call,
                            api_key=api_key, own_key=own_key, state=state,
                            worst_case_micros=bounds.worst_case_micros(model_call, counted),
                            requested_model=call.model or state.config.model,
                            input_bound=bounds.input_token_bound(model_call, counted))

    @property
    def pool_leases(self) -> PoolLeases:
        """This instance's leases on the platform pool, at the configured ceilings (built on first use)."""
        if self._pool_leases is None:
            self._pool_leases = PoolLeases({**parse_ceilings(DEFAULT_POOL_CEILINGS),
                                            **parse_ceilings(get_settings().pool_ceilings)})
        return self._pool_leases

    def _reserve_pool(self, prepared: PreparedCall) -> None:
        """A pool call's share of its model's minute, before the tenant's own admission (a refusal here
        costs the tenant no quota); own-key calls are outside the pool."""
        if prepared.own_key:
            return
        ask = pool.ask_of(prepared.input_bound, prepared.model_call.max_tokens)
        ticket = self.pool_leases.reserve(prepared.model_call.model, prepared.state.limits.plan, ask)
        self._pool_tickets[prepared.request_id] = ticket

    def _settle_pool(self, prepared: PreparedCall, used: Optional[pool.Amounts]) -> Optional[PoolTicket]:
        """True-up: the pool gets back what the call reserved and did not use (`used` None: the call may
        have reached the model, so its whole reservation stays counted). Returns the call's ticket (None
        for an own-key call)."""
        ticket = self._pool_tickets.pop(prepared.request_id, None)
        if ticket is not None and used is not None:
            self.pool_leases.settle(ticket, used)
        return ticket

    def admit(self, prepared: PreparedCall) -> admission.Reservation:
        tenant_id, state = prepared.ctx.tenant_id, prepared.state
        latest = [state]  # the plan too is read again when the view is (a refusal's confirmation)
        principal = self.cache.charge(tenant_id, prepared.ctx.principal_id)

        def load_view() -> Optional[admission.AdmissionView]:
            latest[0] = latest[0].fresh()
            return latest[0].view

        try:
            self._reserve_pool(prepared)
        except TesseraError as error:  # shed before the call: counted with the tenant's other refusals
            raise refusals.counted(tenant_id, error)
        try:
            reservation, view = admission.reserve(
                tenant_id, prepared.request_id, prepared.feature, prepared.worst_case_micros, state.view,
                state.returns, load_view=load_view, load_returns=lambda: admission.load_returns(tenant_id),
                plan_of=lambda name: latest[0].plan_of(name), principal=principal)
        except TesseraError as error:
            self._settle_pool(prepared, pool.Amounts())  # never sent: its pool reservation goes back
            raise refusals.counted(tenant_id, error)
        finally:
            if principal.loaded:
                self.cache.remember_terms(tenant_id, principal)
        self.cache.remember(tenant_id, view, latest[0].plan)
        return reservation

    @staticmethod
    def _record(reservation: admission.Reservation, settlement: ledger.Settlement) -> None:
        """Write the call's usage event. When the model has answered and been paid for, the caller gets the
        answer even if the write fails after retries: the sweeper then gives the reservation back as
        abandoned, and this line carries what an operator needs to record the call by hand."""
        try:
            ledger.record(reservation, settlement)
        except Exception as error:
            log.error("usage not recorded", extra={"fields": {
                "request_id": reservation.request_id, "feature": reservation.feature, "period": reservation.period,
                "status": settlement.status, "model": settlement.model, "input_tokens": settlement.input_tokens,
                "output_tokens": settlement.output_tokens, "cost_micros": settlement.cost_micros,
                "worst_case_micros": reservation.worst_case_micros, "key_source":
                    "tenant" if settlement.own_key else "platform", "error": type(error).__name__}})

    def finish(self, prepared: PreparedCall, reservation: admission.Reservation, usage: Usage, latency_ms: int,
               upstream_request_id: Optional[str], status: str = "ok", served: Optional[Served] = None) -> int:
        """Settle the call at its exact cost, at the prices of the provider that served it; returns that
        cost in micro-dollars."""
        model = prepared.model_call.model
        served = served or Served(pricing.ANTHROPIC, [f"{pricing.ANTHROPIC}:ok"])
        cost = pricing.cost_micros(model, usage.input_tokens, usage.output_tokens, usage.cache_creation_tokens,
                                   usage.cache_read_tokens, usage.cache_creation_1h_tokens,
                                   fast=prepared.model_call.billed_fast(usage), provider=served.provider)
        ctx = prepared.ctx
        settlement = ledger.Settlement(
            principal_id=ctx.principal_id, principal_type=ctx.principal_type, model=model,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_creation_tokens=usage.cache_creation_tokens, cache_read_tokens=usage.cache_read_tokens,
            cost_micros=cost, latency_ms=latency_ms, own_key=prepared.own_key, status=status,
            upstream_request_id=upstream_request_id, provider=served.provider, upstream_attempts=served.trail(),
            unanswered_attempts=served.unanswered)
        self._record(reservation, settlement)
        # Anthropic counts uncached input and cache writes against the input rate, not cache reads
        ticket = self._settle_pool(prepared, pool.Amounts(1, usage.input_tokens + usage.cache_creation_tokens,
                                                          usage.output_tokens))
        if cost > reservation.worst_case_micros:
            log.error("cost above its reservation", extra={"fields": {
                "request_id": reservation.request_id, "cost_micros": cost,
                "worst_case_micros": reservation.worst_case_micros}})
        observability.model_call(prepared.state.limits.plan, prepared.feature, model, usage.input_tokens,
                                 usage.output_tokens, cost, latency_ms, "tenant" if prepared.own_key else "platform",
                                 status, upstream=observability.UpstreamRoute(
                                     served.provider, served.failed_over, len(served.attempts), served.breaker),
                                 pool=ticket.standing() if ticket is not None else None)
        return cost

    def fail(self, prepared: PreparedCall, reservation: admission.Reservation,
             error: Optional[BaseException] = None) -> None:
        """The call ended without an answer: failed (never billed: quota and worst case come back before the
        answer is sent, so a retry finds them) or, when the request may have reached the model,
        indeterminate (counts against quota, not charged)."""
        # Any attempt that got no answer may have been billed, whichever error the caller is given
        unanswered = getattr(error, "maybe_billed", False) or getattr(error, "unanswered_attempts", 0)
        status = ledger.INDETERMINATE if unanswered else ledger.FAILED
        self._settle_pool(prepared, pool.Amounts() if status == ledger.FAILED else None)
        ctx = prepared.ctx
        if error is None or getattr(error, "retryable", False) or unanswered:
            # the model service's failures, which failover is for: not a request upstream refused (a 400,
            # a 429, a rejected own key), which is the caller's to mend and is counted as its error code
            observability.model_call_failed(
                prepared.state.limits.plan, prepared.feature, prepared.model_call.model,
                "tenant" if prepared.own_key else "platform", status,
                "stream_ended_early" if error is None else getattr(error, "code", None) or type(error).__name__,
                getattr(error, "upstream_attempts", None))
        settlement = ledger.Settlement(ctx.principal_id, ctx.principal_type, prepared.model_call.model,
                                       own_key=prepared.own_key, status=status,
                                       upstream_attempts=getattr(error, "upstream_attempts", None),
                                       unanswered_attempts=getattr(error, "unanswered_attempts", 0))
        if not ledger.gives_back_at_once(reservation, status):
            self._record(reservation, settlement)
            return
        try:
            view = ledger.release_at_once(reservation, settlement)
        except Exception as failure:
            log.error("failed call not released", extra={"fields": {
                "request_id": reservation.request_id, "feature": reservation.feature, "period": reservation.period,
                "error": type(failure).__name__}})  # the sweeper gives its reservation back
            return
        if view is not None:
            self.cache.remember(ctx.tenant_id, view)

    # --- whole responses and token counts --------------------------------------------------------

    def run(self, ctx: TenantContext, feature: str, call: FeatureCall) -> GatewayResult:
        prepared = self.prepare(ctx, feature, call)
        reservation = self.admit(prepared)
        try:
            reply, served = self.failover.complete(prepared.model_call, prepared.api_key, prepared.own_key)
        except BaseException as error:
            self.fail(prepared, reservation, error)
            raise
        cost = self.finish(prepared, reservation, reply.usage, reply.latency_ms, reply.upstream_request_id,
                           served=served)
        return GatewayResult(prepared.request_id, reply, cost, prepared.requested_model, prepared.model_call.model)

    def count_tokens(self, ctx: TenantContext, feature: str, call: FeatureCall) -> int:
        """Upstream's token count for the call as the tenant's settings shape it: not admitted, not billed."""
        state = self.require_feature(self.tenant_state(ctx.tenant_id, ctx.plan), feature)
        model_call = self.build_call(state, call)
        api_key, own_key = self.api_key_for(state)
        return self.model_client.count_tokens(model_call, api_key, own_key)


def served_model(state: TenantAI, feature: str, requested: str, plan: Plan) -> str:
    """The model that serves the call: the tenant's brownout model once its month's spend (what admission
    holds, as this instance last saw it) reaches the rule's share of its budget (chalicelib/ai/brownout.py)."""
    limits = state.own_limits
    if not state.config.brownout or limits.budget_micros is None or state.view is None:
        return requested
    period = admission.Moment.of(datetime.now(timezone.utc)).period
    spent = state.view.counters.get(counter_keys.committed_key(period), 0) - state.returns.refunded(period)
    served = brownout.served_model(state.config.brownout, feature, requested, limits.budget_micros, spent)
    return served if plan.allows_model(served) else requested


_default: Optional[Gateway] = None


def default_gateway() -> Gateway:
    """The warm Lambda's gateway: one model client, vault and tenant cache, built on first use."""
    global _default
    if _default is None:
        _default = Gateway()
    return _default


def reset_default_gateway() -> None:
    """Drop the warm gateway with its SDK clients (and their connections), decrypted keys and tenant cache
    (after a SnapStart restore: chalicelib/snapshot.py)."""
    global _default
    _default = None

"""Tenant-aware metrics and tracing through AWS Lambda Powertools.

Metrics are CloudWatch embedded metric format (EMF) records, one per event, written to
stdout (CloudWatch Logs turns them into metrics). Their dimensions are bounded sets, the
plan and the feature (or the refusal's reason), so the metric bill does not grow with
tenants; the tenant id is a property of each record, not a dimension, and per-tenant
views come from the records themselves (docs/observability.md has the Logs Insights and
Contributor Insights queries).

Tracing is Powertools' Tracer (the X-Ray SDK), built on the first sampled request of a
Lambda with tracing on, never at import: the SDK costs about 0.2 s to import, which the
authorizers never pay (they are traced by Lambda itself, without the SDK). Only invocations
Lambda samples (its trace header says `Sampled=1`) touch the SDK: X-Ray records nothing of
the others, yet the SDK's botocore patch cost about 0.2 ms a DynamoDB call on every one of
them (docs/observability.md), so AWS calls are traced through botocore's events instead,
and only when sampled.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from chalicelib import logs

NAMESPACE = "Tessera"
SERVICE = logs.SERVICE
NO_PLAN = "none"

_writer: Optional[logging.Logger] = None


def metrics_writer() -> logging.Logger:
    """Where EMF records go: stdout, one JSON object a line, whatever LOG_LEVEL says."""
    global _writer
    if _writer is None:
        writer = logging.getLogger("tessera-metrics")
        if not writer.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            writer.addHandler(handler)
        writer.setLevel(logging.INFO)
        writer.propagate = False
        _writer = writer
    return _writer


_serializer: Optional[EphemeralMetrics] = None


def emf_serializer() -> EphemeralMetrics:
    """One Powertools EMF provider per warm instance, used only to serialise: each record's metrics,
    dimensions and metadata are handed to `serialize_metric_set`, never stored on it, so concurrent
    requests can share it (a provider per record cost more than the rest of the record)."""
    global _serializer
    if _serializer is None:
        _serializer = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE, dimension_set={"service": SERVICE})
    return _serializer


def _emit(dimensions: Dict[str, str], metrics: Dict[str, Any], properties: Dict[str, Any],
          message: Optional[str] = None, more: Sequence[Directive] = ()) -> None:
    # The shapes `add_dimension` and `add_metric` build, but each value a plain number where `add_metric`
    # makes a list: EMF takes either, and CloudWatch Logs flattens a list to `cost_micros.0`, so queries,
    # Contributor Insights rules and greps could not name `cost_micros` itself. Values are the integers given.
    dimension_set = {name: str(value) for name, value in dimensions.items() if str(value).strip()}
    dimension_set["service"] = SERVICE
    metric_set = {name: {"Unit": unit.value, "StorageResolution": 60, "Value": value}
                  for name, (unit, value) in metrics.items()}
    keys = logs.bound()
    metadata = {name: value for name, value in {"tenant_id": keys.get("tenant_id"),
                                                "request_id": keys.get("request_id"), **properties}.items()
                if value is not None and not logs.is_secret_key(name)}
    record = emf_serializer().serialize_metric_set(metrics=metric_set, dimensions=dimension_set, metadata=metadata)
    for directive in more:
        record["_aws"]["CloudWatchMetrics"].append(directive.serialized(record))
    if message:
        record["message"] = message
    metrics_writer().info(json.dumps(record, separators=(",", ":")))


@dataclass(frozen=True)
class Directive:
    """A further set of metrics in the same record, under dimensions of their own (EMF's `CloudWatchMetrics`
    is a list): the pool's numbers by model, say, beside the call's by plan and feature. Its dimensions'
    values are members the record already has (properties); each dimension set at most 30 names."""

    dimension_sets: Tuple[Tuple[str, ...], ...]
    metrics: Mapping[str, Tuple[MetricUnit, int]]

    def serialized(self, record: Dict[str, Any]) -> Dict[str, Any]:
        record.update({name: value for name, (_, value) in self.metrics.items()})
        return {"Namespace": NAMESPACE, "Dimensions": [[*names, "service"] for names in self.dimension_sets],
                "Metrics": [{"Name": name, "Unit": unit.value} for name, (unit, _) in self.metrics.items()]}


@dataclass(frozen=True)
class UpstreamRoute:
    """How a call reached a model (chalicelib/ai/failover.py): who answered, whether it failed over to
    Bedrock, how many attempts it took, and its model's breaker as the call found it."""

    provider: str = "anthropic"
    failed_over: bool = False
    attempts: int = 1
    breaker: str = "closed"


POOL_DIMENSIONS = ("requests", "input_tokens", "output_tokens")
POOL_REFUSAL = "pool_share_exhausted"
POOL_BUSY = "contention"  # a pool refusal's `limit` when renewals collided, not a ceiling
# A model's breaker (chalicelib/ai/breaker.py) as a number, so a minute's Maximum is its worst state
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True)
class PoolStanding:
    """A pool call's model minute as the instance that admitted it knew it then (chalicelib/metering/
    pool_leases.py), per dimension. `reserved`: the minute item's total over every plan as this instance
    read it at its last lease renewal for the model, plus what it has been granted since (this call's
    reservation included); other instances' renewals since are not in it, so it is exact on a renewing call
    and a lower bound between renewals. `ceiling`: the ceiling in force, the configured one or, for the
    minute after upstream's rate-limit headers reported less, the corrected one."""

    reserved: Mapping[str, int]
    ceiling: Mapping[str, int]

    def metrics(self) -> Dict[str, Tuple[MetricUnit, int]]:
        """`pool_reserved_<dimension>`, `pool_headroom_<dimension>` (the ceiling less the reserved, at
        least 0) and `pool_use_percent`, the fullest dimension's reserved share of its ceiling, rounded
        down (100 for a ceiling of 0)."""
        values: Dict[str, Tuple[MetricUnit, int]] = {}
        fullest = 0
        for dimension in POOL_DIMENSIONS:
            reserved, ceiling = int(self.reserved[dimension]), int(self.ceiling[dimension])
            values[f"pool_reserved_{dimension}"] = (MetricUnit.Count, reserved)
            values[f"pool_headroom_{dimension}"] = (MetricUnit.Count, max(0, ceiling - reserved))
            fullest = max(fullest, 100 if ceiling <= 0 else min(100, reserved * 100 // ceiling))
        values["pool_use_percent"] = (MetricUnit.Percent, fullest)
        return values


def model_call(plan: str, feature: str, model: str, input_tokens: int, output_tokens: int, cost_micros: int,
               latency_ms: int, key_source: str, status: str, upstream: UpstreamRoute = UpstreamRoute(),
               pool: Optional[PoolStanding] = None) -> None:
    """One settled AI call, and its only line: the record is both the metrics and the call's log line
    (`message` "model call"), so a call costs one JSON serialisation and one write, not two. Cost is integer
    micro-dollars (exact in EMF's doubles up to 2**53). `failovers` (0 or 1), `upstream_retries` and
    `breaker_open` (1 while the model's breaker was open or half-open) sum and average to the rates
    docs/upstream.md names; provider and breaker are properties, so the dimensions stay plan and feature.
    A pool call (the platform's key) also carries, in a second directive of the same record by model, its
    model's pool standing at admission (PoolStanding) and `breaker_state` (0 closed, 1 half-open, 2 open:
    the breaker guards pool calls only, as own-key calls are outside the pool)."""
    _emit({"plan": plan, "feature": feature},
          {"requests": (MetricUnit.Count, 1), "input_tokens": (MetricUnit.Count, input_tokens),
           "output_tokens": (MetricUnit.Count, output_tokens), "cost_micros": (MetricUnit.NoUnit, cost_micros),
           "upstream_latency": (MetricUnit.Milliseconds, latency_ms),
           "failovers": (MetricUnit.Count, int(upstream.failed_over)),
           "upstream_retries": (MetricUnit.Count, upstream.attempts - 1),
           "breaker_open": (MetricUnit.Count, int(upstream.breaker != "closed"))},
          {"model": model, "key_source": key_source, "status": status, "provider": upstream.provider,
           "breaker": upstream.breaker}, message="model call",
          more=(Directive((("model",),), {**pool.metrics(), "breaker_state": (
              MetricUnit.NoUnit, BREAKER_STATES.get(upstream.breaker, BREAKER_STATES["open"]))}),)
          if pool is not None else ())


def model_call_failed(plan: str, feature: str, model: str, key_source: str, status: str, error: str,
                      upstream_attempts: Optional[str]) -> None:
    """An admitted AI call that ended without an answer (every attempt failed), and its only line (`message`
    "model call failed"): `failed_calls` 1 by plan and feature, as `requests` counts the answered ones, with
    `upstream_retries` and `failovers` counted over its attempts as for an answered call (so an outage's
    retries and Bedrock attempts are in the same sums). `status` is the ledger's: `failed` (not billed) or
    `indeterminate` (an attempt may have been billed); `error` the code the caller got."""
    attempts = [a for a in (upstream_attempts or "").split(",") if a]
    tried_bedrock = any(a.startswith("bedrock:") for a in attempts)
    _emit({"plan": plan, "feature": feature},
          {"failed_calls": (MetricUnit.Count, 1),
           "upstream_retries": (MetricUnit.Count, max(0, len(attempts) - 1)),
           "failovers": (MetricUnit.Count, int(tried_bedrock and any(a.startswith("anthropic:") for a in attempts)))},
          {"model": model, "key_source": key_source, "status": status, "error": error,
           "upstream_attempts": upstream_attempts}, message="model call failed")


def refusal(reason: str, feature: Optional[str] = None, details: Optional[Mapping[str, Any]] = None) -> None:
    """A request refused with a 4xx: by an authorizer, a plan gate, a quota, a rate, a budget or the pool.
    A pool refusal (shed before the call) is also `pool_shed`, by the plan the pool refused (as admission
    read it, which the credential's plan may trail) and by model and the refusing dimension (`limit`)."""
    details = details or {}
    plan = logs.bound().get("plan") or NO_PLAN
    properties: Dict[str, Any] = {"feature": feature}
    more: Tuple[Directive, ...] = ()
    if reason == POOL_REFUSAL:
        plan = details.get("plan") or plan
        properties.update(model=details.get("model") or "unknown", limit=details.get("limit") or POOL_BUSY)
        more = (Directive((("plan",), ("model", "limit")), {"pool_shed": (MetricUnit.Count, 1)}),)
    _emit({"plan": str(plan), "reason": reason}, {"refusals": (MetricUnit.Count, 1)}, properties, more=more)


# --- tracing -----------------------------------------------------------------------------------------------

_tracer: Any = None


def tracing_enabled() -> bool:
    """In a Lambda (not chalice local or SAM local) unless POWERTOOLS_TRACE_DISABLED says otherwise."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true", "yes", "on"):
        return False
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not (os.environ.get("AWS_SAM_LOCAL")
                                                            or os.environ.get("CHALICE_LOCAL"))


TRACE_HEADER = "_X_AMZN_TRACE_ID"  # set by the Lambda runtime for each invocation
_SUBSEGMENT = "tessera_xray_subsegment"  # the key of a call's subsegment in botocore's request context


def sampled() -> bool:
    """Whether X-Ray samples this invocation: Lambda's trace header for it says `Sampled=1`."""
    return "Sampled=1" in os.environ.get(TRACE_HEADER, "")


def tracer() -> Any:
    """Powertools' Tracer, patching nothing: AWS calls are traced by `trace_aws_calls`."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer(service=SERVICE, auto_patch=False)
    return _tracer


def trace_aws_calls(client: Any) -> Any:
    """Make each call of a botocore client a subsegment (`aws` namespace: service, operation, region,
    request id, HTTP status) in sampled invocations of a Lambda whose requests are traced (the Tracer
    exists). Other calls pay a check. Returns the client."""
    events = client.meta.events
    events.register("before-call", _begin_aws_call)
    events.register("after-call", _end_aws_call)
    events.register("after-call-error", _fail_aws_call)
    return client


def _begin_aws_call(model: Any = None, context: Any = None, **kwargs: Any) -> None:
    # Only where a request built the Tracer (the API handler, `traced`): the authorizers' Lambdas share
    # these clients but never load the SDK.
    if context is None or _tracer is None or not sampled():
        return
    subsegment = _tracer.provider.begin_subsegment(model.service_model.endpoint_prefix, namespace="aws")
    if subsegment is None:  # no segment on this thread (the SDK has logged it)
        return
    subsegment.set_aws({"operation": model.name, "region": context.get("client_region")})
    context[_SUBSEGMENT] = subsegment


def _end_aws_call(http_response: Any = None, parsed: Any = None, context: Any = None, **kwargs: Any) -> None:
    subsegment = (context or {}).pop(_SUBSEGMENT, None)
    if subsegment is None:
        return
    request_id = ((parsed or {}).get("ResponseMetadata") or {}).get("RequestId")
    if request_id:
        subsegment.aws["request_id"] = request_id
    status = getattr(http_response, "status_code", None)
    if status is not None:
        subsegment.put_http_meta("status", status)  # which also flags a 4xx as an error, a 5xx as a fault
    tracer().provider.end_subsegment()


def _fail_aws_call(exception: Optional[BaseException] = None, context: Any = None, **kwargs: Any) -> None:
    """A call that got no HTTP answer (a timeout, a dropped connection)."""
    subsegment = (context or {}).pop(_SUBSEGMENT, None)
    if subsegment is None:
        return
    if exception is not None:
        subsegment.add_exception(exception, [])
    tracer().provider.end_subsegment()


@contextlib.contextmanager
def traced(name: str, **annotations: Optional[str]) -> Iterator[None]:
    """A subsegment for the request, annotated with the tenant (X-Ray can then filter traces by tenant)."""
    if not sampled() or not tracing_enabled():
        yield
        return
    with tracer().provider.in_subsegment(f"## {name}") as subsegment:
        for key, value in annotations.items():
            if value:
                subsegment.put_annotation(key, value)
        yield

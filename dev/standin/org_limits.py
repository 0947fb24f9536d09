"""An organisation's rate limits, as Anthropic enforces them per model and reports them in headers.

Off unless STANDIN_ORG_LIMITS is set (`model=requests/input_tokens/output_tokens;...`, `*` for every
other model). Then each /v1/messages request counts against its model's current wall-clock minute (one
request, its input tokens, its max_tokens), and once answered its output is trued up to what it wrote (`settle`),
as Anthropic documents: "OTPM rate limits are estimated based on max_tokens at the beginning of each request, and
the estimate is adjusted at the end of the request to reflect the actual number of output tokens used" (the API's
rate-limits page). A request past a limit is answered 429 rate_limit_error with `retry-after` (the seconds left in the
minute), and every answer carries `anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,
remaining,reset}`. Anthropic replenishes continuously (a token bucket); a fixed minute is the stricter
approximation here and is what Tessera's pool plans against.

`minutes()` (GET /_standin/org-limits) is what each model's minutes admitted (output as trued up) and refused:
what `make bench`'s pool flood (dev/bench/pool_flood.py) holds the pool's use against.
"""
from __future__ import annotations

import math
import os
import threading
import time
from datetime import datetime, timezone
from typing import Dict, Optional, Tuple

from dev.standin.validation import RequestError

VARIABLE = "STANDIN_ORG_LIMITS"  # not ANTHROPIC_*: the local stack drops those from what it passes on
NAMES = ("requests", "input-tokens", "output-tokens")


def parse(text: Optional[str]) -> Dict[str, Tuple[int, int, int]]:
    limits = {}
    for entry in (text or "").split(";"):
        if entry.strip():
            model, numbers = entry.split("=", 1)
            requests, input_tokens, output_tokens = (int(n) for n in numbers.split("/"))
            limits[model.strip()] = (requests, input_tokens, output_tokens)
    return limits


class OrgLimits:
    def __init__(self, limits: Optional[Dict[str, Tuple[int, int, int]]] = None) -> None:
        self.limits = parse(os.environ.get(VARIABLE)) if limits is None else limits
        self._used: Dict[Tuple[str, int], Tuple[int, int, int]] = {}
        self._refused: Dict[Tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def admit(self, model: str, input_tokens: int, max_tokens: int, now: Optional[float] = None) -> Dict[str, str]:
        """Count the request against its model's minute; its rate-limit headers, or RequestError 429."""
        limit = self.limits.get(model) or self.limits.get("*")
        if limit is None:
            return {}
        now = time.time() if now is None else now
        minute = int(now // 60)
        ask = (1, input_tokens, max_tokens)
        with self._lock:
            used = self._used.get((model, minute), (0, 0, 0))
            after = tuple(u + a for u, a in zip(used, ask))
            refused = any(a > cap for a, cap in zip(after, limit))
            if not refused:
                self._used[(model, minute)] = used = after
            else:
                self._refused[(model, minute)] = self._refused.get((model, minute), 0) + 1
        reset = datetime.fromtimestamp((minute + 1) * 60, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {}
        for name, cap, spent in zip(NAMES, limit, used):
            headers.update({f"anthropic-ratelimit-{name}-limit": str(cap),
                            f"anthropic-ratelimit-{name}-remaining": str(max(0, cap - spent)),
                            f"anthropic-ratelimit-{name}-reset": reset})
        if refused:
            headers["retry-after"] = str(max(1, math.ceil((minute + 1) * 60 - now)))
            raise RequestError(429, "rate_limit_error", "This request would exceed the organization's rate limit "
                               "(stand-in org limits).", headers)
        return headers

    def settle(self, model: str, max_tokens: int, output_tokens: int, admitted_at: float) -> None:
        """The end of an answered call: its minute gets back the output it reserved and did not write."""
        if not (self.limits.get(model) or self.limits.get("*")):
            return
        key = (model, int(admitted_at // 60))
        with self._lock:
            requests, input_tokens, output = self._used.get(key, (0, 0, 0))
            self._used[key] = (requests, input_tokens, max(0, output - max(0, max_tokens - output_tokens)))

    def minutes(self) -> Dict[str, object]:
        """The limits and, per model and minute (its epoch second), what was admitted per dimension and how many
        requests were refused: read-only, for measuring."""
        with self._lock:
            keys = sorted(set(self._used) | set(self._refused), key=lambda key: (key[1], key[0]))
            rows = [{"model": model, "minute": minute * 60,
                     "admitted": dict(zip(("requests", "input_tokens", "output_tokens"),
                                          self._used.get((model, minute), (0, 0, 0)))),
                     "refused_requests": self._refused.get((model, minute), 0)} for model, minute in keys]
        return {"limits": {model: dict(zip(("requests", "input_tokens", "output_tokens"), limit))
                           for model, limit in self.limits.items()}, "minutes": rows}

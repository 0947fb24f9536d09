"""What the stand-in remembers: recorded requests, queued faults, the prompt cache and the batches, and the
message a valid request gets."""
from __future__ import annotations

import hashlib
import threading
import time
from collections import deque

from dev.standin import bedrock
from dev.standin.batches import BatchStore
from dev.standin.faults import fault_error, magic_status
from dev.standin.reply import build_content, last_user_turn, system_text
from dev.standin.usage import texts_of, usage_of
from dev.standin.validation import RequestError, validate_request
from dev.standin.org_limits import OrgLimits

MAX_RECORDED_REQUESTS = 100
CLAUDE_CODE_BETA = "claude-code-20250219"


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def short_hash(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:24]


def record_of(body: dict, key: str, auth_header: str, usage: dict, betas: list | None = None) -> dict:
    """What /_standin/requests shows of a request: its settings, never a key or image data."""
    return {
        "model": body["model"],
        "system": None if body.get("system") is None else system_text(body),
        "max_tokens": body.get("max_tokens"),
        "temperature": body.get("temperature"),
        "messages_count": len(body["messages"]),
        "last_user_text": texts_of(last_user_turn(body)),
        "block_types": sorted({b.get("type") for m in body["messages"] if isinstance(m["content"], list)
                               for b in m["content"]}),
        "params": {name: body[name] for name in ("top_p", "top_k", "stop_sequences", "metadata", "tool_choice",
                                                 "thinking", "service_tier", "cache_control", "output_config",
                                                 "context_management", "speed")
                   if name in body},
        "roles": [m["role"] for m in body["messages"]],
        "betas": betas or [],
        "tools": [tool.get("name") or tool.get("type") for tool in body.get("tools") or []],
        "stream": bool(body.get("stream")),
        "auth_header": auth_header,
        "key_fingerprint": key_fingerprint(key),
        "usage": usage,
    }


def answer(state: "StandinState", body: dict, recorded=lambda usage: None, betas: tuple = ()) -> dict:
    """The message a valid request gets (its usage billed and the prompt cache updated). Claude Code's
    beta makes a tool call only where a directive names it (it offers its tools on every request)."""
    usage = state.usage_for(body)
    message_id = "msg_standin_" + short_hash(f"{id(state)}:{state.next_sequence()}:{time.time_ns()}")
    content, stop_reason, stop_sequence, output_tokens = build_content(
        body, message_id, directed_only=CLAUDE_CODE_BETA in betas)
    usage["output_tokens"] = output_tokens
    if body.get("speed") is not None:
        usage["speed"] = body["speed"]
    recorded(usage)
    return {"id": message_id, "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage}


class StandinState:
    """Recorded requests, queued faults and a sequence counter, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: deque = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._faults: deque = deque()
        self._sequence = 0
        self._prompt_cache: dict = {}
        self.batches = BatchStore(self.batch_result)
        self.bedrock_faults = bedrock.BedrockFaults()
        self.org_limits = OrgLimits()  # off unless STANDIN_ORG_LIMITS is set

    def batch_result(self, params: dict) -> dict:
        """One batch request's result: answered as /v1/messages would answer it, or errored."""
        try:
            body = validate_request(params)
            status = magic_status(texts_of(last_user_turn(body)))
            if status is not None:
                raise fault_error(status)
        except RequestError as error:
            return {"type": "errored", "error": {"type": "error", "error": {"type": error.error_type,
                                                                             "message": error.message}}}
        return {"type": "succeeded", "message": answer(self, body)}

    def usage_for(self, body: dict) -> dict:
        """A message's billed input usage; reads and writes the prompt cache."""
        with self._lock:
            return usage_of(body, self._prompt_cache, time.monotonic())

    def next_sequence(self) -> int:
        with self._lock:
            self._sequence += 1
            return self._sequence

    def record(self, entry: dict) -> None:
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> int:
        with self._lock:
            cleared = len(self._requests)
            self._requests.clear()
            return cleared

    def queue_faults(self, fault: dict, count: int) -> int:
        with self._lock:
            self._faults.extend(dict(fault) for _ in range(count))
            return len(self._faults)

    def take_fault(self) -> dict | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def faults(self) -> list[dict]:
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> int:
        with self._lock:
            cleared = len(self._faults)
            self._faults.clear()
            return cleared

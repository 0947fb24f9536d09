"""The stand-in's organisation limits (dev/standin/org_limits.py): Anthropic's rate-limit headers on each answer,
and a 429 with a true retry-after past a limit, counting max_tokens as output when a call starts."""
from __future__ import annotations

import pytest

from dev.standin.org_limits import OrgLimits
from dev.standin.validation import RequestError

MINUTE = 1_800_000_000.0  # on a minute


def test_each_answer_reports_what_the_minute_has_left():
    limits = OrgLimits({"claude-haiku-4-5": (10, 1000, 500)})
    headers = limits.admit("claude-haiku-4-5", 100, 200, now=MINUTE + 5)
    assert headers["anthropic-ratelimit-requests-remaining"] == "9"
    assert headers["anthropic-ratelimit-input-tokens-remaining"] == "900"
    assert (headers["anthropic-ratelimit-output-tokens-limit"], headers["anthropic-ratelimit-output-tokens-remaining"]) \
        == ("500", "300")
    assert headers["anthropic-ratelimit-output-tokens-reset"] == "2027-01-15T08:01:00Z"


def test_a_request_past_the_output_limit_is_refused_with_the_seconds_left_and_not_counted():
    limits = OrgLimits({"*": (10, 1000, 500)})
    limits.admit("claude-sonnet-4-6", 100, 400, now=MINUTE + 5)
    with pytest.raises(RequestError) as refused:
        limits.admit("claude-sonnet-4-6", 100, 101, now=MINUTE + 20)
    assert (refused.value.status, refused.value.error_type, refused.value.headers["retry-after"]) == \
        (429, "rate_limit_error", "40")
    assert limits.admit("claude-sonnet-4-6", 100, 100, now=MINUTE + 21)["anthropic-ratelimit-output-tokens-remaining"] == "0"


def test_a_new_minute_starts_afresh_and_no_limits_means_no_headers():
    limits = OrgLimits({"*": (1, 1000, 500)})
    limits.admit("claude-sonnet-4-6", 1, 1, now=MINUTE)
    assert limits.admit("claude-sonnet-4-6", 1, 1, now=MINUTE + 60)["anthropic-ratelimit-requests-remaining"] == "0"
    assert OrgLimits({}).admit("claude-sonnet-4-6", 1, 1, now=MINUTE) == {}


def test_an_answered_call_gives_back_the_output_it_reserved_and_did_not_write():
    """As Anthropic documents OTPM: estimated from max_tokens when a call starts, adjusted to its output at the end."""
    limits = OrgLimits({"*": (10, 1000, 500)})
    limits.admit("claude-sonnet-4-6", 100, 400, now=MINUTE + 5)
    limits.settle("claude-sonnet-4-6", 400, 30, admitted_at=MINUTE + 5)
    assert limits.admit("claude-sonnet-4-6", 100, 130, now=MINUTE + 6)["anthropic-ratelimit-output-tokens-remaining"] \
        == "340"  # 500 - 30 - 130
    limits.settle("claude-sonnet-4-6", 400, 30, admitted_at=MINUTE - 1)  # a past minute's call: this one unchanged
    assert limits.minutes()["minutes"][-1]["admitted"] == {"requests": 2, "input_tokens": 200, "output_tokens": 160}


def test_minutes_lists_what_each_minute_admitted_and_refused():
    limits = OrgLimits({"claude-haiku-4-5": (2, 1000, 500)})
    for second in (1, 2, 3, 4):
        try:
            limits.admit("claude-haiku-4-5", 10, 100, now=MINUTE + second)
        except RequestError:
            pass
    limits.admit("claude-haiku-4-5", 10, 100, now=MINUTE + 61)
    assert limits.minutes() == {
        "limits": {"claude-haiku-4-5": {"requests": 2, "input_tokens": 1000, "output_tokens": 500}},
        "minutes": [{"model": "claude-haiku-4-5", "minute": int(MINUTE), "refused_requests": 2,
                     "admitted": {"requests": 2, "input_tokens": 20, "output_tokens": 200}},
                    {"model": "claude-haiku-4-5", "minute": int(MINUTE) + 60, "refused_requests": 0,
                     "admitted": {"requests": 1, "input_tokens": 10, "output_tokens": 100}}]}

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

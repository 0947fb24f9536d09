"""Anthropic's published prices, written out by hand for the tests to check our table and our arithmetic against.

From the pricing page chalicelib/pricing.py cites (https://platform.claude.com/docs/en/about-claude/pricing):
USD per million tokens, cache writes at the 5-minute rate, and the lowest plan of ours that may use each model.
Claude Opus 5.5 from the model catalog in Claude Code 2.1.332 (pricing tier `tier_4_20_cache_read_0_20`:
input 4, output 20, cache_write_5m 5, cache_write_1h 8, cache_read 0.2).

Premiums (the same pricing page): fast mode (Opus 4.6) is $30 input and $150 output per million, cache
rates 1.25 x / 2 x / 0.1 x of that input; long context (more than 200k input tokens, Sonnet 4.6 and
Opus 4.6 with the 1M beta) is 2 x the input-side rates and 1.5 x output.
"""

FAST_MODE = {"input": "30", "output": "150", "cache_write": "37.5", "cache_write_1h": "60", "cache_read": "3"}
FAST_MODE_MODELS = ("claude-opus-5-5", "claude-opus-5", "claude-opus-4-6")
LONG_CONTEXT_MODELS = ("claude-opus-4-6", "claude-sonnet-4-6")
LONG_CONTEXT_ABOVE = 200_000

# model: (display name, input, output, cache write, cache read, lowest plan)
PUBLISHED = {
    "claude-opus-5-5": ("Claude Opus 5.5", "4", "20", "5", "0.20", "pro"),
    "claude-opus-5": ("Claude Opus 5", "5", "25", "6.25", "0.50", "pro"),
    "claude-opus-4-8": ("Claude Opus 4.8", "5", "25", "6.25", "0.50", "pro"),
    "claude-opus-4-7": ("Claude Opus 4.7", "5", "25", "6.25", "0.50", "pro"),
    "claude-opus-4-6": ("Claude Opus 4.6", "5", "25", "6.25", "0.50", "pro"),
    "claude-sonnet-4-6": ("Claude Sonnet 4.6", "3", "15", "3.75", "0.30", "free"),
    "claude-haiku-4-5": ("Claude Haiku 4.5", "1", "5", "1.25", "0.10", "free"),
}

# The most each model writes in one answer ("Max output" on the models overview page the pricing page links
# to): every Opus model 128k, Sonnet 4.6 and Haiku 4.5 64k.
MAX_OUTPUT_TOKENS = {
    "claude-opus-5-5": 128_000,
    "claude-opus-5": 128_000,
    "claude-opus-4-8": 128_000,
    "claude-opus-4-7": 128_000,
    "claude-opus-4-6": 128_000,
    "claude-sonnet-4-6": 64_000,
    "claude-haiku-4-5": 64_000,
}

# Batch processing (the same page, section "Batch processing"): USD per million tokens, input and output.
PUBLISHED_BATCH = {
    "claude-opus-5": ("2.50", "12.50"),
    "claude-opus-4-8": ("2.50", "12.50"),
    "claude-opus-4-7": ("2.50", "12.50"),
    "claude-opus-4-6": ("2.50", "12.50"),
    "claude-sonnet-4-6": ("1.50", "7.50"),
    "claude-haiku-4-5": ("0.50", "2.50"),
}

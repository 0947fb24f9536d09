"""Anthropic's published prices, written out by hand for the tests to check our table and our arithmetic against.

From the pricing page chalicelib/pricing.py cites (https://platform.claude.com/docs/en/about-claude/pricing):
USD per million tokens, cache writes at the 5-minute rate, and the lowest plan of ours that may use each model.
"""

# model: (display name, input, output, cache write, cache read, lowest plan)
PUBLISHED = {
    "claude-opus-5": ("Claude Opus 5", "5", "25", "6.25", "0.50", "pro"),
    "claude-opus-4-8": ("Claude Opus 4.8", "5", "25", "6.25", "0.50", "pro"),
    "claude-opus-4-7": ("Claude Opus 4.7", "5", "25", "6.25", "0.50", "pro"),
    "claude-opus-4-6": ("Claude Opus 4.6", "5", "25", "6.25", "0.50", "pro"),
    "claude-sonnet-4-6": ("Claude Sonnet 4.6", "3", "15", "3.75", "0.30", "free"),
    "claude-haiku-4-5": ("Claude Haiku 4.5", "1", "5", "1.25", "0.10", "free"),
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

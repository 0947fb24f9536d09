"""The local stand-in for Anthropic's API: what answers the product's model calls when no ANTHROPIC_API_KEY is set.

It speaks what the product and the real clients call (Messages, streaming, count_tokens, models, Message
Batches), with Anthropic's shapes, through the official SDKs. `python -m dev.standin --port N` serves it;
the tests and the bench run it on a thread (`dev.standin.server.serve_in_thread`).
"""

"""The local stand-in for Anthropic's API: what answers the product's model calls when no ANTHROPIC_API_KEY is set.

It speaks what the product and the real clients call (Messages, streaming, count_tokens, models, Message
Batches), with Anthropic's shapes, through the official SDKs. `python -m dev.standin --port N` serves it;
the tests and the bench run it on a thread (`dev.standin.server.serve_in_thread`).

    server.py      the HTTP server: routes, authentication, bodies, streaming, the control routes
    validation.py  the checks of a Messages request and the error shape
    faults.py      injected faults: queued ones and `[[standin:...]]` directives
    state.py       recorded requests, queued faults, the prompt cache, and the message a request gets
    reply.py       the reply's content blocks and its event stream
    usage.py       what a request is billed, by Anthropic's documented rules
    batches.py     the Message Batches API
"""

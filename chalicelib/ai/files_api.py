"""`/v1/files*`: Anthropic's Files API is not offered, and says so in Anthropic's error shape.

Files uploaded through the platform's pool key would belong to that key's workspace, which every
tenant on the pool shares: any tenant could list, read or reference another's uploads by id, and no
per-tenant record of ownership could stop a `file_id` reference inside a message from reaching
upstream's shared store. So the routes refuse every call, after the credential is checked, and
`/v1/messages` refuses `file` sources (chalicelib/ai/messages_api.py). Content goes inline (base64,
text) or by URL instead.
"""
from __future__ import annotations

from chalicelib.errors import NotFound

MESSAGE = ("The Files API is not offered by this service: uploads would live in a workspace shared by every "
           "tenant. Send documents and images inline (base64 or text) or by URL in /v1/messages.")


def refuse() -> None:
    raise NotFound(MESSAGE, code="files_api_not_offered")

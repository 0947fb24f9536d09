"""The streaming function: POST /v1/messages and POST /ai/chat answered as produced (docs/streaming.md).

Chalice's handler sends a response whole, so these two routes run in a function of their own. Lambda runs
it behind the Lambda Web Adapter: the adapter's layer is the function's exec wrapper (/opt/bootstrap); it
starts `run.sh`, which serves `web.application` on 127.0.0.1:AWS_LWA_PORT; each invocation becomes an
HTTP request to that server, and with AWS_LWA_INVOKE_MODE=response_stream the adapter hands the
response body to Lambda's response stream as the app writes it, which API Gateway (the integration's
responseTransferMode STREAM) sends on to the client.
"""

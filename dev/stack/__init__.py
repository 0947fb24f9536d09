"""The local stack: what `make run` serves and the end-to-end tests start, answering as the deployed stack does.

    local_stack.py    start and stop it all (`python -m dev.stack`): moto, the stand-in, the stream pump, the API
    moto_server.py    moto in server mode as AWS, one request at a time, with DynamoDB's conflict semantics
    moto_gaps.py      what moto lacks for `chalice deploy` against it
    local_gateway.py  API Gateway: each route to the function that serves it deployed
    local_api.py      `chalice local` with chalice_local.py's fixes and the deployed gateway responses
    web_adapter.py    what the Lambda Web Adapter does with an invocation
    stream_worker.py  what Lambda does with the table's stream and the sweepers' schedules
    budget_check.py   the scheduled budget check, once, against the running stack (`make budget-check`)
"""

"""The production deployment: the CloudFormation template merged into chalice's, least privilege per function,
the streaming function, SnapStart, the deployable zip, the offline rehearsal and the dev stage.

    template.py           the merge template: every resource chalice does not create (start here)
    permissions.py        what each function's code calls, as data, and the IAM policy it becomes
    stream_template.py    the streaming function behind POST /v1/messages and POST /ai/chat
    snapstart.py          SnapStart and the `live` alias on the request path's functions
    gateway_responses.py  what API Gateway answers by itself, in the app's error envelope
    package.py            `make package`: the hash-checked zip and the merged template (`python -m dev.deploy.package`)
    rehearsal.py          the packaged template expanded and created on moto's CloudFormation, offline
    dev_stage.py          `make deploy-dev`: the dev stage through `chalice deploy`
"""

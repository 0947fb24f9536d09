"""Tessera's tooling, none of it deployed, each room a package named for its purpose.

    dev/deploy/    the production template, IAM per function, packaging and the dev stage (`make package`,
                   `make deploy-dev`): what AWS runs is app.py and chalicelib/ inside the template built here
    dev/stack/     the local stack `make run` and the end-to-end tests start: moto as AWS, chalice local behind
                   a local API Gateway, the usage stream's pump
    dev/standin/   the local stand-in for Anthropic's API, answering through the real SDKs
    dev/bench/     `make bench`: the measurements behind docs/performance.md and docs/cost.md
    dev/mutation/  `make mutation`: does the suite fail when the code deciding money, limits and identity changes
    dev/clients/   the real Anthropic clients the end-to-end tests run (`make clients`)

Every room is imported as a package from the project's root (`python -m dev.bench`), never by path.
"""

"""Run the scheduled budget check once against the local stack started by `make run`.

    make budget-check            # the running stack's moto port as `make run` recorded it, or AWS_ENDPOINT_URL
    MOTO_PORT=5101 make budget-check   # or a port given here

It calls the same function the hourly `@app.schedule` calls and prints what it
did; alerts it sends show up in `GET /usage` as `budget.alerts_sent`.
"""
from __future__ import annotations

import json
import os
import sys

from dev.stack import local_stack as stack


def moto_port() -> int:
    """MOTO_PORT if given, else the port of the stack `make run` is serving, else make run's default."""
    if os.environ.get("MOTO_PORT"):
        return int(os.environ["MOTO_PORT"])
    running = stack.running_stack()
    return int(running["MOTO_PORT"]) if running else stack.DEFAULT_PORTS["MOTO_PORT"]


def main() -> int:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    port = moto_port()
    if not endpoint and stack.port_is_free(port):
        print(f"make budget-check: nothing is listening on port {port}; start the stack with `make run` first "
              "(or set MOTO_PORT to its port).", file=sys.stderr)
        return 2
    # With AWS_ENDPOINT_URL, the endpoint `make run` used: its topic's ARN is whatever that endpoint gave it.
    aws = stack.use_endpoint(endpoint) if endpoint else stack.aws_environment(port)
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]  # as for the app: no other AWS setting of the caller's applies
    os.environ.update(stack.stage_environment("local"))
    os.environ.update(aws)
    from chalicelib.jobs.budget_check import check_budgets

    report = check_budgets()
    print(json.dumps({**report.summary(), "alerts_sent": report.alerts_sent}, indent=2))
    return 1 if report.segments_failed else 0


if __name__ == "__main__":
    sys.exit(main())

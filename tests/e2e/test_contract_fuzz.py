"""The contract fuzzer: Schemathesis against `make run`'s processes, every check on, 0 failures.

It generates requests from docs/openapi.yaml (schema examples, boundary values of every keyword, then
random valid and invalid data) for every operation, with a tenant owner's token on tenant routes and an
operator's token on operator routes, and checks every response against the contract: no 5xx, documented
statuses, headers and bodies, valid data accepted, invalid data refused, auth enforced, undeclared methods
answered 405. Examples are bounded (FUZZ_EXAMPLES per operation in the random phase) to keep the suite's
run time modest; tests/e2e/schemathesis.toml holds the settings. One worker: with two, Schemathesis's own
schema walk crashes at times ("AST constructor recursion depth mismatch"), which says nothing of the API.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dev.stack import local_stack as stack 
from test_edges_over_http import new_tenant
from test_local_stack import call, started_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack():
    """A stack of this module's own: editing the plan catalog through the operator routes changes what every
    tenant of a stack meets."""
    with started_stack() as running:
        yield running


ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
FUZZ_EXAMPLES = 5
PHASES = "examples,coverage,fuzzing"


def operations() -> list:
    paths = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())["paths"]
    return [(path, method) for path, item in paths.items() for method in item if method != "parameters"]


def test_the_api_meets_its_contract_under_schemathesis(local_stack, tmp_path):
    operator = stack.operator_token(local_stack.env)
    tenant_id, owner_token, _ = new_tenant(local_stack.api_url)
    # Enterprise, so every feature's routes are reachable; operator routes act on a second tenant.
    status, _ = call("PUT", f"{local_stack.api_url}/admin/tenants/{tenant_id}/plan", {"plan": "enterprise"},
                     token=operator)
    assert status == 200
    target_id, _, _ = new_tenant(local_stack.api_url)
    env = {**os.environ, "FUZZ_TENANT_TOKEN": owner_token, "FUZZ_OPERATOR_TOKEN": operator,
           "FUZZ_TENANT_ID": tenant_id, "FUZZ_OPERATOR_TARGET": target_id}
    st = str(Path(sys.executable).with_name("st"))
    result = subprocess.run(
        [st, "--config-file", str(CONFIG), "run", str(ROOT / "docs" / "openapi.yaml"), "--url", local_stack.api_url,
         "--checks", "all", "--phases", PHASES, "--max-examples", str(FUZZ_EXAMPLES), "--workers", "1",
         "--no-color"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900)  # cwd: its cache stays out of the repo
    output = result.stdout + result.stderr
    summary = [line for line in output.splitlines() if re.search(r"generated|passed|failed|Tested:", line)]
    print("\n".join(summary))
    assert result.returncode == 0, output[-20000:]
    assert re.search(rf"Tested: {len(operations())}\b", output), "every operation in the contract"

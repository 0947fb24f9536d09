"""The console as a person uses it: Debian's chromium, driven by playwright-core (console/browser.mjs),
against `make run`'s processes. One run signs up, creates a key, calls the API with it, finds the calls on
the usage chart, and as an operator finds the tenant and changes its plan; another signs in with the
keyboard alone. Each test below judges one behaviour from that run's results. The screenshots and figures
are kept under build/console/ (README and docs/console.md show them).

`console/install.sh` installs chromium and the pinned npm packages; `make test` runs it first."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dev.stack import local_stack as stack 
from test_local_stack import local_stack  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "console"
PAGES = ("usage", "keys", "users", "settings", "prompts", "operator_tenants", "operator_tenant",
         "operator_platform")
MAX_PAINT_MS = 1000
MAX_PAGE_BYTES = 300 * 1024
MAX_API_CALLS = 3


@pytest.fixture(scope="module")
def run(local_stack):  # noqa: F811
    missing = [what for what, there in (("/usr/bin/chromium", Path("/usr/bin/chromium").exists()),
                                        ("console/node_modules", (ROOT / "console/node_modules/playwright-core").exists()))
               if not there]
    assert not missing, f"{', '.join(missing)} missing: run console/install.sh (make test does)"
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    result = subprocess.run(["node", str(ROOT / "console" / "browser.mjs"), local_stack.api_url,
                             stack.operator_token(local_stack.env), str(OUT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    results = json.loads((OUT / "results.json").read_text())
    assert "error" not in results, results["error"]
    results["by_step"] = {s["name"]: s for s in results["steps"]}
    return results


def test_a_new_tenant_sees_its_api_calls_on_the_usage_chart_to_the_micro_dollar(run):
    assert run["by_step"]["calls made"]["statuses"] == [200, 200, 200]
    seen = run["by_step"]["usage seen"]
    assert seen["api_requests"] == 3 and seen["requests"] == "3"
    assert seen["chart_requests_today"] == 3 and seen["chart_days"] == 90
    assert seen["spend"] == f"${seen['api_spend']}"  # the API's own figure, every digit
    total = sum(int(cost.replace(".", "")) for cost in seen["answers_cost"])
    assert seen["api_spend"] == f"{total // 1_000_000}.{total % 1_000_000:06d}"
    assert any(row.startswith("browser-test (key_") for row in seen["key_row"])


def test_a_new_keys_secret_is_shown_once(run):
    assert run["by_step"]["key created"]["shown_once"] is True
    assert run["pages"]["keys"]["api_calls"] == ["GET /api-keys"]


def test_an_operator_finds_the_tenant_and_changes_its_plan(run):
    found = run["by_step"]["operator found tenant"]
    assert found["rows"] == 1 and found["row"].startswith("Console Test Co")
    assert run["by_step"]["plan changed"]["api_plan"] == "pro"


def test_keyboard_alone_signs_in_and_reaches_a_page_with_visible_focus(run):
    keyboard = run["by_step"]["keyboard only"]
    assert keyboard["first_focus"] == ["login-tenant", "login-email", "login-password"]
    assert keyboard["tabs_to_keys_link"] is not None
    assert keyboard["focus_outline"] == "solid"


def test_every_control_on_every_page_has_a_label(run):
    assert set(run["unlabelled"]) >= {"sign-in", *PAGES}
    assert {page: found for page, found in run["unlabelled"].items() if found} == {}


def test_the_session_is_never_stored_in_the_browser(run):
    assert run["storage"] == {"local": 0, "session": 0, "cookies": ""}


def test_nothing_breaks_the_content_security_policy_or_throws(run):
    # The prompts page of a free tenant shows the plan's 403 on purpose; the browser logs that response.
    errors = [e for e in run["console_errors"] if "status of 403" not in e]
    assert errors == []


def test_first_paint_transfer_and_api_calls_are_within_budget(run):
    first = run["first_load"]
    assert first["paint_ms"] <= MAX_PAINT_MS, first
    for page in PAGES:
        figures = run["pages"][page]
        assert len(figures["api_calls"]) <= MAX_API_CALLS, (page, figures["api_calls"])
        assert first["bytes"] + figures["api_bytes"] <= MAX_PAGE_BYTES, (page, figures)


def test_a_screenshot_of_each_page_is_kept(run):
    kept = {p.stem for p in (OUT / "screenshots").glob("*.png")}
    assert kept >= {"sign-in", *PAGES}

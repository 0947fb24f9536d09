"""The console's files: only the listed ones are served, each with a strict Content-Security-Policy, the page
has nothing inline for that policy to block, and the charting library served is the one the lock pins."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chalicelib import console
from chalicelib.errors import NotFound

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(console.ASSETS))
def test_every_console_file_carries_the_strict_policy(name):
    text, headers = console.asset(name)
    assert text
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy and headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", ["__init__.py", "../app.py", "index.htm", ""])
def test_anything_else_is_not_found(name):
    with pytest.raises(NotFound):
        console.asset(name)


def test_the_page_has_no_inline_script_style_or_handler():
    page, _ = console.asset("index.html")
    scripts = re.findall(r"<script\b([^>]*)>", page)
    assert scripts and all('src="console/' in attributes for attributes in scripts)
    assert not re.search(r"\sstyle=|\son[a-z]+=|<style", page)
    assert not re.search(r"https?://", page)  # nothing from elsewhere: it works offline


def test_the_session_is_kept_in_memory_only():
    script, _ = console.asset("app.js")
    assert not re.search(r"localStorage|sessionStorage|document\.cookie|indexedDB", script)


def test_the_served_chart_library_is_the_locked_version():
    lock = json.loads((ROOT / "console" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/uplot"]["version"]
    served, _ = console.asset("uplot.js")
    assert served.startswith(f"/*! https://github.com/leeoniya/uPlot (v{version}) */")
    installed = ROOT / "console" / "node_modules" / "uplot" / "dist" / "uPlot.iife.min.js"
    if installed.exists():  # console/install.sh copies it; without node_modules the version check stands
        assert served == installed.read_text()


def test_the_contract_names_exactly_the_files_served():
    import yaml

    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    [name] = spec["paths"]["/console/{name}"]["parameters"]
    assert sorted(name["schema"]["enum"]) == sorted(console.ASSETS)

"""The README's walk-through, run as written against `make run`'s processes on a fresh stack.

The commands are read from README.md, not copied: a reader sets the two values `make run` printed (the
API URL and the operator token) and runs the rest as it stands, and so does this test. Then the SDK
example runs with the key those commands made.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from test_local_stack import READY_LINE, MakeRun, free_ports

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n{heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end != -1 else None]


def code_blocks(text: str, language: str) -> List[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def walk_through() -> Tuple[List[str], List[str]]:
    """The walk-through's shell blocks, then the SDK example, in the README's order."""
    text = section(README.read_text(), "## Walk-through with curl")
    return code_blocks(text, "sh"), code_blocks(text, "python")


def json_values(output: str) -> List[Any]:
    """The JSON documents curl printed one after another (without newlines between them)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(output):
        if output[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(output, at)
        values.append(value)
    return values


def printed(run: MakeRun, label: str) -> str:
    return next(line.split(label, 1)[1].strip() for line in run.output if label in line)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="the walk-through uses curl and jq")
def test_the_readme_walk_through_works_as_written_on_a_fresh_stack():
    shell, python = walk_through()
    settings, commands = shell[0], "\n".join(shell[1:])
    assert re.search(r"^API=", settings, re.M) and re.search(r"^OPERATOR=", settings, re.M)
    run = MakeRun(free_ports(3))
    try:
        ready = run.wait_for(READY_LINE)
        api_url = re.search(r"http://127\.0\.0\.1:\d+", ready).group(0)
        operator = printed(run, "operator token:")
        # What a reader does with the first block: set the two values make run printed.
        values = f"API={api_url}\nOPERATOR='{operator}'\n"
        script = values + commands + '\nprintf "\\n%s\\n" "$KEY" >&2\n'
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                                timeout=300, cwd=str(ROOT))
        assert result.returncode == 0, result.stdout + result.stderr
        answers = json_values(result.stdout)
        me, plan, *ai_results = answers
        assert me["principal_type"] == "api_key" and plan["plan"] == "enterprise"
        assert len(ai_results) == 4 and all(set(r) == {"id", "content", "model", "stop_reason", "usage",
                                                        "cost_usd"} for r in ai_results), answers
        key = result.stderr.strip().splitlines()[-1]
        assert key.startswith("tsk_")
        sdk = python[0].replace('base_url="http://127.0.0.1:8000"', f'base_url="{api_url}"')
        sdk = sdk.replace('api_key="tsk_..."', f'api_key="{key}"')
        example = subprocess.run([sys.executable, "-c", sdk], capture_output=True, text=True, timeout=120)
        assert example.returncode == 0 and example.stdout.strip(), example.stdout + example.stderr
        assert run.ctrl_c() == 0, run.text
    finally:
        run.close()

"""The deployable package, built once per session by `dev/package.py` (what `make package` runs), offline.

It is built into a temporary directory with no AWS credentials and every AWS endpoint
pointed at a closed port, so a step that tried to reach AWS would fail here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"
ARTIFACTS_BUCKET = "tessera-artifacts"
ARTIFACT_KEY = "tessera/prod/deployment.zip"


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("package") / STAGE
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_CONFIG_FILE": os.devnull})
    result = subprocess.run([sys.executable, str(ROOT / "dev" / "package.py"), "--stage", STAGE, "--out", str(out)],
                            cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"dev/package.py failed:\n{result.stdout}\n{result.stderr}"
    print(result.stdout)
    return out


@pytest.fixture(scope="session")
def template_path(package_dir) -> Path:
    return package_dir / "sam.json"


@pytest.fixture(scope="session")
def template(template_path) -> Dict[str, Any]:
    return json.loads(template_path.read_text())


@pytest.fixture(scope="session")
def expanded(template) -> Dict[str, Any]:
    """The template as CloudFormation runs it: code in S3, the SAM transform applied (aws-sam-translator)."""
    import rehearsal

    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator builds ARNs for a region
    try:
        return rehearsal.expand(template, ARTIFACTS_BUCKET, ARTIFACT_KEY)
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


@pytest.fixture(scope="session")
def stage_env() -> Dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config["environment_variables"], **config["stages"][STAGE]["environment_variables"]}

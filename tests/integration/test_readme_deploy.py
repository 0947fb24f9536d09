"""Every deploy command in the README runs as written: each is checked against what it needs."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from dev.deploy import package as packaging 

ROOT = Path(__file__).resolve().parents[2]
INLINE_TEMPLATE_LIMIT = 51_200  # bytes: CloudFormation's TemplateBody limit; larger needs an S3 upload


def deploy_commands() -> List[List[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("#", 1)[0].strip()
            if command:
                commands.append(shlex.split(command.replace("<bucket>", "BUCKET")))
    return commands


def option(command: List[str], name: str) -> str:
    assert name in command, f"{' '.join(command[:3])} needs {name}"
    return command[command.index(name) + 1]


def values_after(command: List[str], name: str) -> List[str]:
    start = command.index(name) + 1
    end = next((i for i in range(start, len(command)) if command[i].startswith("--")), len(command))
    return command[start:end]


@pytest.fixture(scope="module")
def commands():
    found = deploy_commands()
    kinds = [" ".join(c[:3]) if c[0] == "aws" else " ".join(c[:2]) for c in found]
    assert kinds == ["make deploy-dev", "make package", "aws cloudformation package", "aws cloudformation deploy"], kinds
    return dict(zip(kinds, found))


def packaged_size(template: Dict[str, Any]) -> int:
    """The size of what `aws cloudformation package` writes: the template, code URIs in S3, as YAML."""
    packaged = json.loads(json.dumps(template))
    for resource in packaged["Resources"].values():
        if "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = "s3://BUCKET/0123456789abcdef0123456789abcdef"
    return len(yaml.safe_dump(packaged, default_flow_style=False).encode())


def test_make_package_names_a_configured_stage(commands):
    stage = commands["make package"][2].split("=", 1)[1]
    assert stage in json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]


def test_cloudformation_package_reads_the_template_make_package_writes(commands, package_dir):
    stage = commands["make package"][2].split("=", 1)[1]
    command = commands["aws cloudformation package"]
    template_file = Path(option(command, "--template-file"))
    assert ROOT / template_file == packaging.default_out(stage) / "sam.json"
    assert (package_dir / template_file.name).exists()
    assert option(command, "--s3-bucket") and option(command, "--output-template-file")


def test_cloudformation_deploy_deploys_what_package_wrote(commands):
    assert option(commands["aws cloudformation deploy"], "--template-file") == \
        option(commands["aws cloudformation package"], "--output-template-file")
    assert option(commands["aws cloudformation deploy"], "--stack-name")


def test_the_template_is_over_the_inline_limit_so_deploy_uploads_it(commands, template, template_path):
    assert template_path.stat().st_size > INLINE_TEMPLATE_LIMIT
    assert packaged_size(template) > INLINE_TEMPLATE_LIMIT
    assert option(commands["aws cloudformation deploy"], "--s3-bucket")


def test_deploy_acknowledges_the_capabilities_the_template_needs(commands, template):
    capabilities = set(values_after(commands["aws cloudformation deploy"], "--capabilities"))
    iam = [r for r in template["Resources"].values() if r["Type"].startswith("AWS::IAM::")]
    named = [r for r in iam if {"RoleName", "ManagedPolicyName", "UserName", "GroupName"} & set(r["Properties"])]
    if iam:
        assert "CAPABILITY_IAM" in capabilities or "CAPABILITY_NAMED_IAM" in capabilities
    if named:
        assert "CAPABILITY_NAMED_IAM" in capabilities
    if "Transform" in template:
        assert "CAPABILITY_AUTO_EXPAND" in capabilities


def test_deploy_overrides_only_parameters_the_template_declares(commands, template):
    overrides = dict(v.split("=", 1) for v in values_after(commands["aws cloudformation deploy"],
                                                           "--parameter-overrides"))
    parameters = template["Parameters"]
    assert set(overrides) <= set(parameters)
    assert all(name in overrides for name, p in parameters.items() if "Default" not in p)
    for name, value in overrides.items():
        if "AllowedValues" in parameters[name]:
            assert value in [str(v) for v in parameters[name]["AllowedValues"]], name


def test_the_dev_route_is_a_make_target_that_runs_chalice_deploy_for_the_dev_stage(commands):
    """`make deploy-dev` runs dev/deploy/dev_stage.py, whose last step is the chalice CLI's deploy of the dev stage
    (tests/integration/test_chalice_deploy.py runs it against moto)."""
    from dev.deploy import dev_stage

    target = re.search(r"^deploy-dev:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert target and target.group(1).split() == ["$(WRITE_BYTECODE)", "$(PY)", "-m", "dev.deploy.dev_stage", "deploy"]
    assert dev_stage.STAGE == "dev" and "dev" in json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]
    source = Path(dev_stage.__file__).read_text()
    assert '"deploy", "--stage", stage]' in source

"""Build the deployable package: chalice's template plus what chalice does not create, and a lean zip.

`make package STAGE=prod` runs `python -m dev.deploy.package --stage prod --out build/prod`.
Nothing here talks to AWS: no credentials are needed.

1. The project is staged in a temporary folder with its dependencies in `vendor/`,
   installed from requirements.lock with every hash checked (`--require-hashes`), for
   Lambda's platform (manylinux up to the python3.13 runtime's glibc 2.34, CPython 3.13)
   and without their dependencies, so nothing outside the lock can enter. The lock leaves
   out boto3, botocore and their dependencies: the runtime ships them, and a copy in the
   zip would shadow the runtime's.
2. A plain `chalice package` of the staged project gives the functions, their events and
   the REST API; dev/deploy/template.py derives the merge template from it
   (build/<stage>/merge-template.json), and a second `chalice package --merge-template`
   writes the result.
3. Bytecode goes into the zip: Lambda's /var/task is read-only, so without it every cold
   start compiles what it imports (anthropic and pydantic alone: about 0.7 s). The .pyc
   files are unchecked-hash (PEP 552): never re-validated against the sources, which never
   change in a deployed zip.

`python -m dev.deploy.package --lock` regenerates requirements.lock from requirements.txt.
"""
from __future__ import annotations

import argparse
import collections
import compileall
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]

from dev.deploy import template as merge  # noqa: E402  (dev/deploy/template.py)
from chalicelib.table import cloudformation_resource  # noqa: E402

DEFAULT_REGION = "us-east-1"
LOCK_FILE = ROOT / "requirements.lock"
# The Lambda runtime. chalice names it after the interpreter that runs `chalice package` (no setting
# overrides that), so the venv, the lock, the zip's wheels and bytecode all follow this one version.
# 3.13: `import anthropic` is the fastest of 3.11-3.13 here, and SnapStart needs 3.12 or later.
PYTHON_VERSION = (3, 13)
PYTHON = "%d.%d" % PYTHON_VERSION
RUNTIME = f"python{PYTHON}"
# What Lambda's Python runtime ships, left out of the lock and the zip.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
# Lambda's python3.12 and python3.13 runtimes run on Amazon Linux 2023: glibc 2.34.
LAMBDA_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 4, -1)] + ["manylinux2014_x86_64"]
PROJECT_FILES = ("app.py", "chalicelib", ".chalice/config.json")
# Installed alongside packages but never imported on Lambda.
VENDOR_CLUTTER = ("bin",)


class PackagingError(RuntimeError):
    pass


def stage_environment(stage: str) -> Dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stages = config.get("stages", {})
    if stage not in stages:
        raise PackagingError(f"Unknown stage {stage!r}; .chalice/config.json defines: {', '.join(sorted(stages))}.")
    return {**config.get("environment_variables", {}), **stages[stage].get("environment_variables", {})}


def _run(args: List[str], what: str, **kwargs: Any) -> str:
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        raise PackagingError(f"{what} failed with exit code {result.returncode}:\n{result.stdout.strip()}")
    return result.stdout


def check_interpreter() -> None:
    """chalice writes the running interpreter's version as the Runtime, and bytecode is per version."""
    if sys.version_info[:2] != PYTHON_VERSION:
        raise PackagingError(f"Packaging for {RUNTIME} needs Python {PYTHON}, not {sys.version.split()[0]}: run "
                             "it through `make package`, whose venv is built on that version.")


def install_locked(target: Path, lock: Path = LOCK_FILE) -> None:
    """Every package of the lock, hash-checked, for Lambda's platform, without dependencies."""
    if not lock.exists():
        raise PackagingError(f"{lock.name} is missing; run `make lock`.")
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
          "--require-hashes", "--only-binary=:all:", *platforms, "--implementation", "cp",
          "--python-version", PYTHON, "--abi", "cp%d%d" % PYTHON_VERSION, "--no-compile", "--target", str(target),
          "-r", str(lock)],
         f"Installing {lock.name} for Lambda")
    for name in VENDOR_CLUTTER:
        shutil.rmtree(target / name, ignore_errors=True)


# A stage's settings for `chalice deploy`'s own roles (the dev stage's, dev/deploy/dev_stage.py). The packaged
# template gives every function its role (dev/deploy/template.py), so packaging drops them: chalice would
# otherwise look for policy files that only a `chalice deploy` of that stage writes.
CHALICE_ROLE_SETTINGS = ("manage_iam_role", "autogen_policy", "iam_policy_file")


def packaging_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """.chalice/config.json without any stage's CHALICE_ROLE_SETTINGS."""
    config = json.loads(json.dumps(config))
    for stage in config.get("stages", {}).values():
        for settings in [stage, *stage.get("lambda_functions", {}).values()]:
            for name in CHALICE_ROLE_SETTINGS:
                settings.pop(name, None)
    return config


def stage_project(into: Path) -> Path:
    """A copy of the project to package: its code, and its locked dependencies in vendor/."""
    for name in PROJECT_FILES:
        source, target = ROOT / name, into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    config = into / ".chalice" / "config.json"
    config.write_text(json.dumps(packaging_config(json.loads(config.read_text())), indent=2) + "\n")
    install_locked(into / "vendor")
    return into


def chalice_package(stage: str, out: Path, merge_template: Optional[Path] = None, project: Path = ROOT) -> None:
    chalice = Path(sys.executable).with_name("chalice")
    if not chalice.exists():
        raise PackagingError(f"chalice is not installed next to {sys.executable}; run `make package`.")
    args = [str(chalice), "--project-dir", str(project), "package", "--stage", stage]
    if merge_template is not None:
        args += ["--merge-template", str(merge_template)]
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    _run(args + [str(out)], "`chalice package`", cwd=str(project), env=env)


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Write atomically: a concurrent run never reads half a template."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(f.name, path)


def add_bytecode(zip_path: Path) -> int:
    """Rewrite the zip with an unchecked-hash .pyc beside every .py; returns how many were added."""
    check_interpreter()
    with tempfile.TemporaryDirectory(prefix="tessera-bytecode-") as work:
        tree = Path(work) / "tree"
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
            archive.extractall(tree)
        ok = compileall.compile_dir(str(tree), quiet=2, workers=0, ddir="/var/task",
                                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        if not ok:
            raise PackagingError(f"Some modules of the package do not compile for {RUNTIME}.")
        rebuilt = zip_path.with_suffix(".tmp")
        added = 0
        with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_DEFLATED) as archive:
            for info in infos:
                archive.writestr(info, (tree / info.filename).read_bytes(), zipfile.ZIP_DEFLATED)
            for pyc in sorted(tree.rglob("*.pyc")):
                name = pyc.relative_to(tree).as_posix()
                entry = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, pyc.read_bytes(), zipfile.ZIP_DEFLATED)
                added += 1
        os.replace(rebuilt, zip_path)
    return added


def zip_report(zip_path: Path, top: int = 10) -> Tuple[float, List[Tuple[str, int, int]]]:
    """The zip's size in MB and its largest top-level entries: (name, bytes, compressed bytes)."""
    sizes: Dict[str, int] = collections.Counter()
    compressed: Dict[str, int] = collections.Counter()
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            name = info.filename.split("/", 1)[0]
            sizes[name] += info.file_size
            compressed[name] += info.compress_size
    largest = sorted(sizes, key=lambda name: (-sizes[name], name))[:top]
    return zip_path.stat().st_size / 1e6, [(name, sizes[name], compressed[name]) for name in largest]


def package(stage: str, out: Path) -> Path:
    check_interpreter()
    env = stage_environment(stage)
    with tempfile.TemporaryDirectory(prefix="tessera-package-") as work:
        project = stage_project(Path(work) / "project")
        chalice_package(stage, Path(work) / "plain", project=project)
        plain = json.loads((Path(work) / "plain" / "sam.json").read_text())
        merge_path = out / "merge-template.json"
        try:
            merged = merge.merge_template(stage, env, plain, cloudformation_resource(env["TESSERA_TABLE_NAME"]))
        except (merge.TemplateError, KeyError, ValueError) as error:
            raise PackagingError(str(error).strip('"')) from None
        write_json(merge_path, merged)
        for stale in ("sam.json", "sam.yaml", "deployment.zip"):
            (out / stale).unlink(missing_ok=True)
        chalice_package(stage, out, merge_path, project=project)
    add_bytecode(out / "deployment.zip")
    return merge_path


def default_out(stage: str) -> Path:
    """Each stage packages into its own folder: a dev build never overwrites prod's."""
    return ROOT / "build" / stage


def write_lock() -> None:
    """requirements.lock from requirements.txt: every package pinned with its hashes, the runtime's left out."""
    unsafe = [arg for name in RUNTIME_PROVIDED for arg in ("--unsafe-package", name)]
    _run([str(Path(sys.executable).with_name("pip-compile")), "--quiet", "--generate-hashes", "--strip-extras",
          "--no-emit-find-links", "--no-emit-index-url", "--no-emit-trusted-host", "--annotation-style=line",
          *unsafe, "--output-file", LOCK_FILE.name, "requirements.txt"], "pip-compile", cwd=str(ROOT))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Package Tessera for deployment (offline).")
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--out", type=Path, help="default: build/<stage>")
    parser.add_argument("--lock", action="store_true", help="regenerate requirements.lock and stop")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    try:
        if args.lock:
            write_lock()
            print(f"Wrote {LOCK_FILE.relative_to(ROOT)}")
            return 0
        out = (args.out or default_out(args.stage)).resolve()
        merge_path = package(args.stage, out)
    except PackagingError as error:
        print(f"make package: {error}", file=sys.stderr)
        return 1
    zip_path = out / "deployment.zip"
    template_path = out / "sam.json"
    size_mb, largest = zip_report(zip_path)
    print(f"Packaged stage {args.stage!r}")
    print(f"  template:       {template_path} ({template_path.stat().st_size:,} bytes)")
    print(f"  merge template: {merge_path}")
    print(f"  deployment:     {zip_path} ({size_mb:.1f} MB)")
    print("  largest top-level packages (unzipped / zipped MB):")
    for name, size, zipped in largest:
        print(f"    {size / 1e6:7.2f} {zipped / 1e6:7.2f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

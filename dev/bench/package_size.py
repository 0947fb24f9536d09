"""`make bench`, section 6: the deployment package, as `make package` builds it, and what fills it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

from dev.bench.harness import ROOT, BenchBase
from dev.bench.report import section
from dev.stack import local_stack as stack


OBSERVABILITY_PACKAGES = ("aws_lambda_powertools", "aws_xray_sdk", "wrapt")


def _zip_tree(tree: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tree).as_posix())
    return target


class PackageSize(BenchBase):
    def measure_package(self) -> None:
        section("6. deployment package")
        out = self.workdir / "package"
        env = {**os.environ, "AWS_DEFAULT_REGION": stack.REGION}
        for variable in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(variable, None)
        t0 = time.perf_counter()
        how = "python -m dev.deploy.package --stage prod"
        args = [sys.executable, "-m", "dev.deploy.package", "--stage", "prod", "--out", str(out)]
        result = subprocess.run(args, cwd=str(ROOT), env=env, capture_output=True, text=True)
        zip_path = out / "deployment.zip"
        if result.returncode != 0 or not zip_path.exists():
            print(f"  packaging failed ({how}, exit {result.returncode}):\n{result.stdout}{result.stderr}")
            self.report.note(f"Packaging with `{how}` failed (exit {result.returncode}); no zip figures.")
            return
        elapsed = time.perf_counter() - t0
        size = zip_path.stat().st_size
        sizes, zipped, files = Counter(), Counter(), Counter()
        pyc = 0
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                top = info.filename.split("/", 1)[0]
                sizes[top] += info.file_size
                zipped[top] += info.compress_size
                files[top] += 1
                pyc += info.filename.endswith(".pyc")
            self.zip_dir = self.workdir / "lambda-task"
            archive.extractall(self.zip_dir)
        print(f"  {how}: {zip_path.name} {size / 1e6:.2f} MB in {elapsed:.1f} s, {pyc} .pyc files")
        self.report.add("6 Package", f"deployment.zip ({how})", [size / 1e6], "MB", 2, "<= 20 MB",
                        lambda v: v <= 20)
        self.report.add("6 Package", ".pyc files in the zip", [pyc], "files", 0)
        largest = sorted(sizes, key=lambda k: (-zipped[k], k))[:10]
        rows = [[name, f"{zipped[name] / 1e6:.2f}", f"{sizes[name] / 1e6:.2f}", str(files[name]),
                 f"{100 * zipped[name] / size:.0f}%"] for name in largest]
        self.report.table("Largest top-level entries in deployment.zip (by zipped size)",
                          ["Entry", "Zipped MB", "Unzipped MB", "Files", "Share of zip"], rows)
        for row in rows:
            print("   ", "  ".join(row))
        observability = [name for name in sizes if name.split("-")[0] in OBSERVABILITY_PACKAGES]
        self.report.add("6 Package", "of which Powertools, the X-Ray SDK and wrapt (zipped)",
                        [sum(zipped[name] for name in observability) / 1e6], "MB", 2)
        # The same tree without its bytecode (what chalice ships by itself), for the cold starts of section 3.
        self.zip_source_dir = self.workdir / "lambda-task-source"
        shutil.copytree(self.zip_dir, self.zip_source_dir, ignore=shutil.ignore_patterns("__pycache__"))
        sources_only = _zip_tree(self.zip_source_dir, self.workdir / "deployment-without-pyc.zip")
        self.report.add("6 Package", "deployment.zip without its .pyc (for comparison)",
                        [sources_only.stat().st_size / 1e6], "MB", 2)

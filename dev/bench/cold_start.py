"""`make bench`, section 3: how the Lambdas start cold, from source, precompiled and as the zip ships, and
what their imports cost."""
from __future__ import annotations

import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

from dev.bench.harness import ROOT, SITE_PACKAGES, Tree, BenchBase
from dev.bench.report import section


LAMBDA_TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


COLD_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
kind = sys.argv[1]
out = {}
if kind == "baseline":
    import boto3, pynamodb, chalice
    from pynamodb.models import Model
    out["import"] = time.perf_counter() - t0
elif kind == "floor":
    from chalice import AuthResponse, Chalice
    from chalicelib.identity.resolve import resolve
    out["import"] = time.perf_counter() - t0
else:
    import app
    out["import"] = time.perf_counter() - t0
    out["anthropic_after_import"] = "anthropic" in sys.modules
    class Context:
        aws_request_id = "cold"
        function_name = "cold"
        def get_remaining_time_in_millis(self):
            return 10000
    if kind == "authorizer":
        t1 = time.perf_counter()
        result = app.tenant_auth({"type": "TOKEN", "authorizationToken": "Bearer " + os.environ["BENCH_TOKEN"],
                                  "methodArn": os.environ["BENCH_ARN"]}, Context())
        out["first_call"] = time.perf_counter() - t1
        assert result["policyDocument"]["Statement"][0]["Resource"], "authorizer denied"
        out["anthropic_after_call"] = "anthropic" in sys.modules
        out["xray_after_call"] = "aws_xray_sdk" in sys.modules
    else:
        t1 = time.perf_counter()
        import anthropic
        out["anthropic"] = time.perf_counter() - t1
        t3 = time.perf_counter()
        from chalicelib import observability
        if observability.tracing_enabled():
            observability.tracer()
        out["tracer"] = time.perf_counter() - t3
        t2 = time.perf_counter()
        response = app.app(json.loads(os.environ["BENCH_EVENT"]), Context())
        out["first_call"] = time.perf_counter() - t2
        assert response["statusCode"] == 200, response
print("BENCH_RESULT " + json.dumps(out))
"""


def _cold_child(kind: str, tree: Tree, env: Dict[str, str]) -> dict:
    cwd = tree.cwd
    result = subprocess.run([sys.executable, *tree.flags, "-c", COLD_CHILD, kind], cwd=str(cwd),
                            env={**env, **tree.env}, capture_output=True, text=True, timeout=120)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    raise RuntimeError(f"cold-start child {kind} in {cwd} failed (exit {result.returncode}):\n"
                       f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")


def _importtime(code: str, tree: Tree, env: Dict[str, str]) -> Dict[str, Tuple[int, int]]:
    """module -> (self us, cumulative us) from `python -X importtime`."""
    result = subprocess.run([sys.executable, *tree.flags, "-X", "importtime", "-c", code], cwd=str(tree.cwd),
                            env={**env, **tree.env}, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"importtime of {code!r} failed:\n{result.stderr[-3000:]}")
    modules = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|", 2)
        modules[name.strip()] = (int(own), int(cumulative))
    return modules


class ColdStart(BenchBase):
    def cold_trees(self) -> Dict[str, "Tree"]:
        """The module trees a cold start can meet, each with the environment that makes it so."""
        for name in ("pyc", "src"):
            target = self.workdir / f"cold-{name}"
            target.mkdir()
            shutil.copy2(ROOT / "app.py", target / "app.py")
            shutil.copytree(ROOT / "chalicelib", target / "chalicelib",
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            if name == "pyc":
                compileall.compile_dir(str(target), quiet=1)
        runs = self.sizes.cold_runs
        no_write = {"PYTHONDONTWRITEBYTECODE": "1"}
        trees = {
            "our code precompiled": Tree(self.workdir / "cold-pyc", {}, runs),
            "our code from source": Tree(self.workdir / "cold-src", no_write, runs),
        }
        if self.zip_dir is not None:
            # As in Lambda: /var/task (the zip) first, then the runtime's own boto3 and botocore with their
            # dependencies, and nothing else: `-S` keeps the venv's site-packages (moto's cryptography,
            # blinker, ...) off the path, so only what the zip and the runtime hold can be imported.
            runtime = self.workdir / "lambda-runtime"
            runtime.mkdir()
            for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"):
                (runtime / name).symlink_to(Path(SITE_PACKAGES) / name)
            # In Lambda: LAMBDA_TASK_ROOT and, with active tracing, a trace header per invocation.
            in_lambda = {"LAMBDA_TASK_ROOT": str(self.zip_dir), "_X_AMZN_TRACE_ID": LAMBDA_TRACE_HEADER}
            for name, tree, extra in (
                    ("Lambda zip as shipped", self.zip_dir, in_lambda),
                    ("Lambda zip, tracing off", self.zip_dir, {**in_lambda, "POWERTOOLS_TRACE_DISABLED": "true"}),
                    ("Lambda zip without .pyc (before)", self.zip_source_dir, in_lambda)):
                trees[name] = Tree(tree, {**no_write, **extra, "PYTHONPATH": f"{tree}{os.pathsep}{runtime}"}, runs,
                                   flags=("-S",))
        empty = self.workdir / "empty-pycache"
        empty.mkdir()
        trees["nothing precompiled"] = Tree(self.workdir / "cold-src", {**no_write, "PYTHONPYCACHEPREFIX": str(empty)},
                                            min(3, runs), warm=False)
        return trees

    def measure_cold_start(self) -> None:
        s = self.sizes
        section(f"3. cold start: fresh processes, {s.cold_runs} runs of each, interleaved")
        tenant = self.gateway_tenant
        self.use_table("bench-overhead-0")
        gw = self.gateway
        authorizer = gw.authorize(gw.auth_event(tenant.token, "POST", "/ai/chat"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update({"BENCH_TOKEN": tenant.token, "BENCH_ARN": gw.method_arn("POST", "/ai/chat"),
                    "BENCH_EVENT": json.dumps(gw.event("POST", "/ai/chat", self.chat_body(), tenant.token,
                                                       authorizer=authorizer))})
        trees = self.cold_trees_cache
        kinds = ("baseline", "authorizer", "floor", "ai")
        results: Dict[Tuple[str, str], List[dict]] = defaultdict(list)
        for tree in trees.values():   # one untimed run each, so the OS file cache is warm for all
            if tree.warm:
                for kind in kinds:
                    _cold_child(kind, tree, env)
        for run in range(max(t.runs for t in trees.values())):
            for name, tree in trees.items():
                if run < tree.runs:
                    for kind in kinds:
                        results[(name, kind)].append(_cold_child(kind, tree, env))
            print(f"  run {run + 1}: " + ", ".join(
                f"{name}: app {results[(name, 'authorizer')][-1]['import'] * 1000:.0f} / baseline "
                f"{results[(name, 'baseline')][-1]['import'] * 1000:.0f} ms" for name, tree in trees.items()
                if run < tree.runs), flush=True)
        r = self.report
        for tree in trees:
            sec = f"3 Cold start ({tree})"
            base = [x["import"] * 1000 for x in results[(tree, "baseline")]]
            auth = results[(tree, "authorizer")]
            ai = results[(tree, "ai")]
            r.add(sec, "baseline: import boto3, pynamodb, chalice (+ pynamodb Model)", base, "ms", 0)
            r.add(sec, "import app (authorizer Lambda: import only)", [x["import"] * 1000 for x in auth], "ms", 0)
            floor = results[(tree, "floor")]
            r.add(sec, "floor: import chalice + chalicelib.identity.resolve only (what the authorizer uses)",
                  [x["import"] * 1000 for x in floor], "ms", 0)
            r.add(sec, "import app + first tenant_auth (JWT, 1 BatchGetItem)",
                  [(x["import"] + x["first_call"]) * 1000 for x in auth], "ms", 0)
            r.add(sec, "ratio import app / baseline", [x["import"] / b["import"] for x, b in
                                                       zip(auth, results[(tree, "baseline")])], "x", 2,
                  "<= 1.3x", lambda v: v <= 1.3)
            r.add(sec, "ratio floor / baseline", [x["import"] / b["import"] for x, b in
                                                  zip(floor, results[(tree, "baseline")])], "x", 2)
            r.add(sec, "ratio (import app + first auth) / baseline",
                  [(x["import"] + x["first_call"]) / b["import"] for x, b in zip(auth, results[(tree, "baseline")])],
                  "x", 2)
            r.add(sec, "import app + import anthropic (AI route Lambda, until the client has the SDK)",
                  [(x["import"] + x["anthropic"]) * 1000 for x in ai], "ms", 0)
            shipped = tree == "Lambda zip as shipped"
            r.add(sec, "first AI request's imports: app + anthropic + Tracer (X-Ray SDK, when tracing is on)",
                  [(x["import"] + x["anthropic"] + x["tracer"]) * 1000 for x in ai], "ms", 0,
                  "<= 1000 ms" if shipped else "", (lambda v: v <= 1000) if shipped else None)
            r.add(sec, "  of which the Tracer", [x["tracer"] * 1000 for x in ai], "ms", 0)
            r.add(sec, "import app + anthropic + Tracer + first POST /ai/chat",
                  [(x["import"] + x["anthropic"] + x["tracer"] + x["first_call"]) * 1000 for x in ai], "ms", 0)
            if shipped:
                r.add(sec, "authorizer's import (import app)", [x["import"] * 1000 for x in auth], "ms", 0,
                      "<= 400 ms", lambda v: v <= 400)
            leaked = sum(x["anthropic_after_import"] or x["anthropic_after_call"] or x["xray_after_call"]
                         for x in auth)
            r.add(sec, "runs with anthropic or the X-Ray SDK in sys.modules after import app / first auth", [leaked],
                  "runs", 0,
                  "0", verdict="HOLD" if leaked == 0 else "MISS")

    def measure_importtime(self) -> None:
        section("import profile: python -X importtime")
        tree = "Lambda zip as shipped" if self.zip_dir is not None else "our code from source"
        trees = self.cold_trees_cache
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        for label, code in (("import app", "import app"),
                            ("import anthropic after app", "import app; import anthropic")):
            for name in (tree, "our code precompiled"):
                runs = [_importtime(code, trees[name], env) for _ in range(self.sizes.importtime_runs)]
                selfs: Dict[str, List[float]] = defaultdict(list)
                cumulative: Dict[str, List[float]] = defaultdict(list)
                for run in runs:
                    for module, (own, cum) in run.items():
                        selfs[module].append(own)
                        cumulative[module].append(cum)
                own = {m: statistics.median(v) for m, v in selfs.items()}
                cum = {m: statistics.median(v) for m, v in cumulative.items()}
                if label == "import anthropic after app":
                    before = _importtime("import app", trees[name], env)
                    own = {m: v for m, v in own.items() if m not in before}
                packages: Dict[str, float] = defaultdict(float)
                for module, value in own.items():
                    packages[module.split(".")[0]] += value
                total = sum(own.values())
                top_packages = sorted(packages.items(), key=lambda kv: -kv[1])[:12]
                rows = [[p, f"{v / 1000:.1f}", f"{100 * v / total:.0f}%"] for p, v in top_packages]
                self.report.table(f"`{label}` by top-level package ({name}; self time summed, median of "
                                  f"{len(runs)}; total {total / 1000:.0f} ms)", ["Package", "ms", "Share"], rows)
                print(f"  {label} ({name}): {total / 1000:.0f} ms; " +
                      ", ".join(f"{p} {v / 1000:.0f}" for p, v in top_packages[:6]))
                if name == tree:
                    top = sorted(own.items(), key=lambda kv: -kv[1])[:20]
                    self.report.table(f"`{label}`: top 20 modules by self time ({name})",
                                      ["Module", "Self ms", "Cumulative ms"],
                                      [[m, f"{v / 1000:.1f}", f"{cum.get(m, 0) / 1000:.1f}"] for m, v in top])

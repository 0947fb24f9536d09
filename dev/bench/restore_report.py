"""`make bench`, section 7: the first request of an instance restored from a SnapStart snapshot.

For each function kind and each memory size in MEMORY_MB, dev/bench/restore.py runs Lambda's init (`import app`
with the function's handler setting) and the before-snapshot hooks once, then restores that image
RESTORES times (a fork each, under a CPU quota of memory/1,769 of one core, as Lambda allots CPU), each
running the after-restore hooks and timing its first request: POST /ai/chat up to the moment the upstream
receives it, the tenant authorizer, and POST /auth/login. Lambda's own restore of the snapshot cannot be
run here: PUBLISHED says what AWS publishes of it, and the target leaves it the rest of the second.

    .venv/bin/python -m dev.bench --only restore     # this section alone, into docs/performance.md
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

from dev.bench.report import replace_block

ROOT = Path(__file__).resolve().parents[2]
MEMORY_MB = (1769, 1024, 512, 384, 256)
ONE_VCPU_MB = 1769
RESTORES = 5
TARGET_MS = 1000
SECTION = "7 SnapStart restore"
MACHINE_KEYS = ("Python", "Date", "Load average (1/5/15 min) at start", "Load average (1/5/15 min) at end")
BEGIN, END = "<!-- bench_restore: begin -->", "<!-- bench_restore: end -->"

# What AWS publishes about the restore itself, quoted with its source.
PUBLISHED = [
    ("Startup with SnapStart", "\"from several seconds to as low as sub-second\" (no per-runtime figure is given)",
     "https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html"),
    ("Where the restore time shows", "the REPORT line's `Restore Duration` (snapshot restore, runtime load and "
     "after-restore hooks) and, for Python, `Billed Restore Duration`",
     "https://docs.aws.amazon.com/lambda/latest/dg/snapstart-monitoring.html"),
    ("Runtimes", "Python 3.12 and later; published versions and aliases only; not with provisioned concurrency",
     "https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html"),
    ("Price (Python, us-east-1)", "cache $0.0000015046 per GB-second per published version (3 hours minimum); "
     "restore $0.0001397998 per GB restored", "https://aws.amazon.com/lambda/pricing/"),
]


def configured_memory(function: str) -> int:
    if function == "stream_handler":  # not chalice's: dev/deploy/stream_template.py sets it
        from dev.deploy import stream_template

        return stream_template.MEMORY_MB
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return int(config["lambda_functions"].get(function, {}).get("lambda_memory_size", config["lambda_memory_size"]))


def restore_runs(moto_port: int, mode: str, memory_mb: int, restores: int) -> Dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "dev.bench.restore", "--moto-port", str(moto_port),
                             "--children", str(restores), "--mode", mode,
                             "--cpu", f"{memory_mb / ONE_VCPU_MB:.4f}"], cwd=str(ROOT), capture_output=True, text=True,
                            timeout=600)
    for line in result.stdout.splitlines():
        if line.startswith("RESTORE_RESULT "):
            found = json.loads(line.split(" ", 1)[1])
            errors = [r["error"] for r in found["restores"] if "error" in r]
            if errors:
                raise RuntimeError(f"a restore failed:\n{errors[0]}")
            return found
    raise RuntimeError(f"dev/bench/restore.py failed (exit {result.returncode}):\n{result.stderr[-3000:]}")


def measure(bench: Any) -> None:
    """Add this section's rows to the bench's report."""
    from dev.bench.report import section

    r, restores = bench.report, max(2, min(RESTORES, bench.sizes.cold_runs))
    api_memory, stream_memory = configured_memory("api_handler"), configured_memory("stream_handler")
    section(f"7. SnapStart restore: {restores} restores per memory size, CPU quota memory/{ONE_VCPU_MB} of a core")
    for memory in MEMORY_MB:
        sec = f"{SECTION} ({memory} MB = {memory / ONE_VCPU_MB:.2f} vCPU)"
        ai = restore_runs(bench.moto_port, "ai", memory, restores)
        if ai["cpu_fraction"] is None:
            r.note("**SnapStart restore.** No cgroup CPU quota could be set on this machine: every memory size "
                   "ran with the whole core, so the rows compare nothing.")
        runs = ai["restores"]
        r.add(sec, "before-snapshot hooks, once per version (not on any request)", [ai["image"]["before_snapshot_s"]
                                                                                     * 1000], "ms", 0)
        r.add(sec, "after-restore hooks", [x["hooks_s"] * 1000 for x in runs], "ms", 1)
        chosen = memory == api_memory
        r.add(sec, "first POST /ai/chat after restore: hooks + request until the upstream receives it",
              [x["to_upstream_s"] * 1000 for x in runs], "ms", 0,
              f"<= {TARGET_MS} ms less Lambda's restore" if chosen else "",
              (lambda v: v <= TARGET_MS) if chosen else None)
        if chosen:
            r.add(sec, "of the second, left for Lambda's own restore (PUBLISHED: 'as low as sub-second')",
                  [TARGET_MS - x["to_upstream_s"] * 1000 for x in runs], "ms", 0)
        r.add(sec, "  its CPU time", [x["cpu_s"] * 1000 for x in runs], "ms", 0)
        r.add(sec, "the same instance's second POST /ai/chat, until the upstream receives it",
              [x["warm_to_upstream_s"] * 1000 for x in runs], "ms", 0)
        stream = restore_runs(bench.moto_port, "stream", memory, restores)["restores"]
        chosen = memory == stream_memory
        r.add(sec, "streaming function (the AI routes): first POST /ai/chat after restore, as the adapter sends "
                   "it, until the upstream receives it", [x["to_upstream_s"] * 1000 for x in stream], "ms", 0,
              f"<= {TARGET_MS} ms less Lambda's restore" if chosen else "",
              (lambda v: v <= TARGET_MS) if chosen else None)
        if chosen:
            r.add(sec, "  of the second, left for Lambda's own restore",
                  [TARGET_MS - x["to_upstream_s"] * 1000 for x in stream], "ms", 0)
        r.add(sec, "  its second POST /ai/chat, until the upstream receives it",
              [x["warm_to_upstream_s"] * 1000 for x in stream], "ms", 0)
        for mode, metric in (("auth", "first tenant_auth after restore (JWT, 1 BatchGetItem)"),
                             ("login", "first POST /auth/login after restore (argon2 verify)")):
            found = restore_runs(bench.moto_port, mode, memory, restores)
            r.add(sec, metric, [x["request_s"] * 1000 for x in found["restores"]], "ms", 0)


def markdown(report: Any, info: Dict[str, str]) -> str:
    from dev.bench.report import Report, md_table

    rows = [row.cells() for row in report.rows if row.section.startswith(SECTION)]
    lines = [BEGIN, "## SnapStart: the first request after a restore", "",
             "`python -m dev.bench --only restore` rewrites this section alone (dev/bench/restore_report.py). This run: "
             + "; ".join(f"{k}: {v}" for k, v in info.items() if k in MACHINE_KEYS) + ".", "",
             md_table(Report.HEADER, rows), "",
             "### What AWS publishes about the restore itself", "",
             md_table(["Figure", "As published", "Source"], [list(p) for p in PUBLISHED]), "",
             "### How it is measured", "",
             "- **The image.** dev/bench/restore.py sets the function's handler (`_HANDLER`: `app.app`, or "
             "`app.tenant_auth` for the authorizer), imports app.py (which registers the hooks with the real "
             "`snapshot_restore_py`) and runs the before-snapshot hooks; a tenant is set up in a throwaway "
             "child first, so the image holds init and nothing a request warmed.",
             "- **A restore** is a fork of that image (a child starts from the parent's memory, as a restored "
             "execution environment starts from the snapshot), with `random`'s state put back as the image holds "
             "it (CPython reseeds it at fork, which no restore does). The child moves itself into a cgroup "
             f"whose CFS quota is memory/{ONE_VCPU_MB} of one core (Lambda's CPU per MB), runs the after-restore "
             "hooks, then the first request. Restores run one after another.",
             "- **The streaming function** (`--mode stream`): its image is run.sh's start-up as the Lambda Web "
             "Adapter runs it (`server.warm()` primes the SDK, the web server answers the readiness check), with "
             "no request before the snapshot and no runtime hook after it (the adapter replaces the runtime's "
             "loop); `AWS_LAMBDA_INITIALIZATION_TYPE=snap-start` as Lambda sets it. Each restore's server thread "
             "takes the first POST /ai/chat sent as the adapter sends it (dev/stack/web_adapter.py), and the app's "
             "first-request step (chalicelib.snapshot.OnFirstRequest) runs inside that request's time.",
             "- **Until the upstream receives it**: the Anthropic stand-in, in the parent, notes when each "
             "request line arrives (`time.perf_counter`, one monotonic clock for the whole machine); the time "
             "runs from the start of the after-restore hooks. The authorizer and login rows are wall time of "
             "the call.",
             "- **Not measured here**: Lambda's restore of the snapshot (see the table above: AWS gives no "
             "per-runtime figure; deployed, the REPORT line shows it), TLS handshakes (moto and the stand-in "
             "speak plain HTTP; deployed, a restored instance opens new TLS connections to DynamoDB, KMS and "
             "the Anthropic API), and moto's latency is not DynamoDB's (docs/local-dynamodb.md).",
             END, ""]
    return "\n".join(lines)


def write_section(path: Path, report: Any, info: Dict[str, str]) -> None:
    """Put this section into docs/performance.md, replacing its previous run and nothing else."""
    replace_block(path, BEGIN, END, markdown(report, info))


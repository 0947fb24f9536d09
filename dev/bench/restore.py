"""SnapStart restores, modelled on this machine: init and the before-snapshot hooks in one process, then
each restored execution environment a fork of it.

Lambda's SnapStart runs a version's init, calls the hooks registered with `snapshot_restore_py`
(before-snapshot), snapshots the memory, and starts each new execution environment from that image,
calling the after-restore hooks first. `os.fork` gives a child exactly its parent's memory image, so a
fork is a restore of it, with one difference undone here: CPython's own at-fork handler reseeds `random`
in the child (random.py registers `after_in_child=seed`), which no restore does, so the child puts back
the image's state before the hooks run. The hooks come from the real `snapshot_restore_py` (the package
Lambda's runtime provides; a dev requirement here), registered by `import app` as in Lambda.

Lambda gives a function CPU in proportion to its memory (1,769 MB = one vCPU). `cpu_fraction` runs each
restored child under a CFS quota of that fraction of one core (a cgroup v1 cpu controller, as root), so a
smaller memory size can be measured, not guessed. Where no cgroup can be made, the child runs unlimited
and the result says so.

    python -m dev.bench.restore --moto-port N [--children 3] [--dirty] [--cpu 0.29]

(`RESTORE_PROFILE=1` prints a cProfile of each restore to stderr.) It
prints one JSON object: what the image held and, per restored child, what it produced and how long its
after-restore hooks and its first AI request took up to the moment the upstream received it.
tests/integration/test_snapshot_restore.py and dev/bench/restore_report.py run it.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]

from dev.stack import local_stack as stack  # noqa: E402  (dev/stack/local_stack.py)
from dev.bench.harness import JWT_SECRET, OPERATOR_SECRET, POOL_KEY  # noqa: E402  (the bench's local secrets)

OWN_KEY = "sk-ant-restore-tenants-own-key"
SECRET_ID = "tessera/restore/probe"
CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 100_000


def run_registered(registry: List[Any]) -> None:
    """Call hooks as Lambda's runtime does: each (func, args, kwargs) in the order registered."""
    for func, args, kwargs in registry:
        func(*args, **kwargs)


class RecordingUpstream:
    """The Anthropic stand-in, noting for each request the caller's TCP port, the key it sent and when
    (time.perf_counter: CLOCK_MONOTONIC, one clock for every process of the machine) it arrived."""

    def __init__(self) -> None:
        standin = stack.load_standin()
        arrivals: List[Dict[str, Any]] = []

        class Handler(standin.StandinHandler):
            def parse_request(self) -> bool:
                arrivals.append({"at": time.perf_counter(), "port": self.client_address[1]})
                parsed = super().parse_request()
                key = self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix("Bearer ")
                arrivals[-1].update(path=self.path.split("?")[0], key=key)
                return parsed

            def log_message(self, *args: Any) -> None:
                pass

        from http.server import ThreadingHTTPServer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.standin_state = standin.StandinState()
        self.arrivals = arrivals
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def messages(self) -> List[Dict[str, Any]]:
        return [a for a in self.arrivals if a.get("path") == "/v1/messages"]


class CpuShare:
    """A cgroup v1 CPU quota of `fraction` of one core for the processes put in it."""

    def __init__(self, fraction: Optional[float]) -> None:
        self.fraction = fraction
        self.path: Optional[Path] = None
        if fraction is None:
            return
        path = CGROUP_ROOT / f"tessera-restore-{os.getpid()}"
        try:
            path.mkdir()
            (path / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(max(1000, int(CFS_PERIOD_US * fraction))))
            self.path = path
        except OSError:
            if path.exists():
                path.rmdir()

    def enter(self) -> None:
        if self.path is not None:
            (self.path / "tasks").write_text(str(os.getpid()))

    def close(self) -> None:
        if self.path is not None:
            self.path.rmdir()


def fork_restored(children: int, work: Callable[[], Dict[str, Any]], share: CpuShare,
                  hooks: bool = True) -> List[Dict[str, Any]]:
    """Restore the current memory image `children` times, one after another: each child runs the
    after-restore hooks (unless `hooks` is False: a runtime that calls none), then `work`, and sends back
    what work returned, with the hooks' duration."""
    import snapshot_restore_py

    image_random = random.getstate()

    def restored() -> Dict[str, Any]:
        random.setstate(image_random)  # as the image holds it: undo CPython's at-fork reseed
        share.enter()
        started, cpu = time.perf_counter(), time.process_time()
        profile = _profiler()
        if hooks:
            run_registered(snapshot_restore_py.get_after_restore())
        out = {"started": started, "hooks_s": time.perf_counter() - started, **work()}
        if profile is not None:
            profile.disable()
            pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        return {**out, "cpu_s": time.process_time() - cpu}

    return [_in_child(restored, raising=False) for _ in range(children)]


def _profiler() -> Optional[cProfile.Profile]:
    """A CPU-time profile of the restore when RESTORE_PROFILE is set."""
    if not os.environ.get("RESTORE_PROFILE"):
        return None
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    return profile


def _image_state(probe: Dict[str, Any]) -> Dict[str, Any]:
    """What this process's memory holds of the things a restore must not share."""
    from chalicelib import secrets
    from chalicelib.ai.gateway import default_gateway
    from chalicelib.ids import new_request_id

    return {"random": random.random(), "request_id": new_request_id(),
            "plain_keys": len(default_gateway()._plain_keys), "secret": secrets._fetch_secret(SECRET_ID), **probe}


def _in_child(work: Callable[[], Dict[str, Any]], raising: bool = True) -> Dict[str, Any]:
    """Run `work` in a forked child and return what it returned (JSON), or {"error": its traceback}; with
    `raising`, raise that instead. The parent's memory is untouched by whatever the child warmed."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            payload, code = json.dumps(work()), 0
        except BaseException:
            payload, code = json.dumps({"error": traceback.format_exc()}), 1
        with os.fdopen(write, "w") as pipe:
            pipe.write(payload)
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    result = json.loads(payload)
    if raising and "error" in result:
        raise RuntimeError(result["error"])
    return result


MODES = {"ai": "app.app", "login": "app.app", "auth": "app.tenant_auth"}


def scenario(moto_port: int, children: int, dirty: bool, cpu_fraction: Optional[float],
             mode: str = "ai") -> Dict[str, Any]:
    """Init as Lambda does it (`import app` with the function's handler setting), optionally a request served
    before the snapshot (`dirty`: connections open, a key decrypted, a secret cached), the snapshot, then the
    restores, each timing its first request: POST /ai/chat (`ai`), POST /auth/login (`login`) or the tenant
    authorizer (`auth`). A tenant is set up in a throwaway child first, so the image holds init only."""
    upstream = RecordingUpstream()
    stack.run_app_in_process(moto_port, upstream.url, JWT_SECRET, OPERATOR_SECRET, POOL_KEY)
    os.environ["_HANDLER"] = MODES[mode]  # Lambda's handler setting for the function
    os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    secrets_manager = _probe_secret()

    from dev.bench.harness import ApiGateway, _silence_app_output

    init_started = time.perf_counter()
    import app  # registers the hooks (chalicelib/snapshot.py), as Lambda's init does
    import snapshot_restore_py

    init_s = time.perf_counter() - init_started
    _silence_app_output()
    logged = _count_app_output()
    gw = ApiGateway(app)
    body = {"messages": [{"role": "user", "content": "Name one risk of a late launch."}], "max_tokens": 32}

    def set_up() -> Dict[str, Any]:
        tenant = _signed_up(gw, own_key=True)
        authorizer = gw.authorize(gw.auth_event(tenant["token"], "POST", "/ai/chat"))
        return {**tenant, "event": gw.event("POST", "/ai/chat", body, tenant["token"], authorizer=authorizer)}

    tenant = _in_child(set_up)
    event = tenant["event"]
    image: Dict[str, Any] = {"init_s": init_s}
    if dirty:
        status, _ = gw.invoke(json.loads(json.dumps(event)))
        assert status == 200, status
        image["upstream_ports"] = sorted({a["port"] for a in upstream.messages()})
    # The hooks a snapshot runs, then the image's own view of what must not be shared.
    snapshot_started = time.perf_counter()
    run_registered(snapshot_restore_py.get_before_snapshot())
    image["before_snapshot_s"] = time.perf_counter() - snapshot_started
    image["anthropic_imported"] = "anthropic" in sys.modules
    image.update(_image_state({}) if dirty else {})
    secrets_manager.put_secret_value(SecretId=SECRET_ID, SecretString="value-after-snapshot")

    from chalicelib import aws
    from chalicelib.ai.gateway import default_gateway
    from chalicelib.models import table_connection

    # The image's clients (built by the request served before the snapshot, if any), kept to compare.
    image_clients = {"kms": aws.client("kms"), "table": table_connection().connection.client,
                     "model": dict(default_gateway().model_client._clients)} if dirty else {}

    def first_request() -> Dict[str, Any]:
        from chalicelib import secrets
        from chalicelib.ids import new_request_id

        if mode == "auth":
            started = time.perf_counter()
            assert gw.authorize(gw.auth_event(tenant["token"], "POST", "/ai/chat")) is not None
            return {"request_s": time.perf_counter() - started}
        if mode == "login":
            started = time.perf_counter()
            status, _ = gw.request("POST", "/auth/login", {"tenant": tenant["slug"], "email": tenant["email"],
                                                           "password": tenant["password"]})
            return {"status": status, "request_s": time.perf_counter() - started}
        keys_after_restore = len(default_gateway()._plain_keys)
        started = time.perf_counter()
        status, answer = gw.invoke(json.loads(json.dumps(event)))
        answered = time.perf_counter()
        again, logged_before = time.perf_counter(), logged.count
        gw.invoke(json.loads(json.dumps(event)))  # the same instance, now warm
        return {"log_bytes_warm": logged.count - logged_before, "status": status,
                "request_id": (answer or {}).get("id"), "request_s": answered - started,
                "answered": answered, "again": again, "sent": time.perf_counter(), "random": random.random(),
                "new_request_id": new_request_id(), "plain_keys_after_restore": keys_after_restore,
                "plain_keys_after_request": len(default_gateway()._plain_keys),
                "secret": secrets._fetch_secret(SECRET_ID), "pid": os.getpid(),
                "image_clients_reused": sorted(_reused(image_clients))}

    share = CpuShare(cpu_fraction)
    try:
        restores = fork_restored(children, first_request, share)
    finally:
        share.close()
    upstream.server.shutdown()
    _upstream_arrivals(restores, upstream.messages())
    return {"image": image, "restores": restores, "cpu_fraction": cpu_fraction if share.path else None,
            "mode": mode}


def _probe_secret() -> Any:
    """A secret holding "value-at-snapshot" (changed after the snapshot to see who reads it afresh)."""
    import boto3

    secrets_manager = boto3.client("secretsmanager", region_name=stack.REGION)
    try:
        secrets_manager.create_secret(Name=SECRET_ID, SecretString="value-at-snapshot")
    except secrets_manager.exceptions.ResourceExistsException:
        secrets_manager.put_secret_value(SecretId=SECRET_ID, SecretString="value-at-snapshot")
    return secrets_manager


STREAM_HANDLER = "chalicelib/stream_host/run.sh"  # dev/deploy/stream_template.py HANDLER


def stream_scenario(moto_port: int, children: int, cpu_fraction: Optional[float]) -> Dict[str, Any]:
    """The streaming function, as the Lambda Web Adapter runs it with SnapStart: init is run.sh's start-up
    (`server.warm()`, then the web server listening and its readiness check answered), the snapshot follows
    with no request served (the adapter forwards no invocation before init ends), and no runtime hook runs
    (the adapter replaces the managed runtime's loop). Each restore is a fork whose server thread serves the
    first POST /ai/chat, sent as the adapter sends it (dev/stack/web_adapter.py): the app's first-request step
    (chalicelib.snapshot.OnFirstRequest) is all that makes the instance its own."""
    import urllib.request

    from dev.stack import web_adapter

    upstream = RecordingUpstream()
    stack.run_app_in_process(moto_port, upstream.url, JWT_SECRET, OPERATOR_SECRET, POOL_KEY)
    os.environ["_HANDLER"] = STREAM_HANDLER
    os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"  # as Lambda sets it for a SnapStart function
    secrets_manager = _probe_secret()
    body = {"messages": [{"role": "user", "content": "Name one risk of a late launch."}], "max_tokens": 32}

    def set_up() -> Dict[str, Any]:  # app.py only in this throwaway child: the function's image never holds it
        import app
        from dev.bench.harness import ApiGateway, _silence_app_output

        _silence_app_output()
        gw = ApiGateway(app)
        tenant = _signed_up(gw, own_key=True)
        authorizer = gw.authorize(gw.auth_event(tenant["token"], "POST", "/ai/chat"))
        return {"event": gw.event("POST", "/ai/chat", body, tenant["token"], authorizer=authorizer)}

    event = _in_child(set_up)["event"]
    init_started = time.perf_counter()
    from chalicelib.stream_host import server, web

    server.warm()
    running = server.make("127.0.0.1", 0)
    serving = threading.Thread(target=running.serve_forever, args=(0.05,), daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{running.server_port}"
    with urllib.request.urlopen(url + web.HEALTH_PATH, timeout=30) as ready:  # the adapter's readiness check
        assert ready.status == 200
    running.shutdown()  # the thread stops; the listening socket stays, as in the snapshot
    from dev.bench.harness import _silence_app_output

    _silence_app_output()
    image = {"init_s": time.perf_counter() - init_started, "before_snapshot_s": 0.0,
             "anthropic_imported": "anthropic" in sys.modules, "app_imported": "app" in sys.modules,
             "made_own_before_snapshot": web.made_own._done, **_image_state({})}  # a secret read at init
    secrets_manager.put_secret_value(SecretId=SECRET_ID, SecretString="value-after-snapshot")

    def first_request() -> Dict[str, Any]:
        from chalicelib import secrets
        from chalicelib.ai.gateway import default_gateway
        from chalicelib.ids import new_request_id

        threading.Thread(target=running.serve_forever, args=(0.05,), daemon=True).start()  # threads survive a restore
        keys_after_restore = len(default_gateway()._plain_keys)
        started = time.perf_counter()
        invocation = web_adapter.invoke(url, json.loads(json.dumps(event)))
        answer = json.loads(b"".join(invocation))
        answered = time.perf_counter()
        again = time.perf_counter()
        b"".join(web_adapter.invoke(url, json.loads(json.dumps(event))))  # the same instance, now warm
        return {"status": invocation.status, "request_id": answer.get("id"), "request_s": answered - started,
                "answered": answered, "again": again, "sent": time.perf_counter(), "random": random.random(),
                "new_request_id": new_request_id(), "plain_keys_after_restore": keys_after_restore,
                "plain_keys_after_request": len(default_gateway()._plain_keys),
                "secret": secrets._fetch_secret(SECRET_ID), "pid": os.getpid(), "image_clients_reused": []}

    share = CpuShare(cpu_fraction)
    try:
        restores = fork_restored(children, first_request, share, hooks=False)
    finally:
        share.close()
    upstream.server.shutdown()
    _upstream_arrivals(restores, upstream.messages())
    return {"image": image, "restores": restores, "cpu_fraction": cpu_fraction if share.path else None,
            "mode": "stream"}


def _upstream_arrivals(restores: List[Dict[str, Any]], calls: List[Dict[str, Any]]) -> None:
    """Each request's upstream arrival: the time to reach upstream (the first request's making the instance its
    own included), by the machine's one monotonic clock."""
    for restore in restores:
        if "answered" not in restore:
            continue
        first = [a for a in calls if restore["started"] <= a["at"] <= restore["answered"]]
        warm = [a for a in calls if restore["again"] <= a["at"] <= restore["sent"]]
        if first:
            restore["to_upstream_s"] = first[0]["at"] - restore["started"]
            restore["upstream_port"] = first[0]["port"]
            restore["upstream_key"] = first[0]["key"] == OWN_KEY
        if warm:
            restore["warm_to_upstream_s"] = warm[0]["at"] - restore["again"]


class _CountingStream:
    """Where the app's log lines and metric records go: counted in bytes (what CloudWatch Logs ingests)."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, text: str) -> int:
        self.count += len(text.encode())
        return len(text)

    def flush(self) -> None:
        pass


def _count_app_output() -> _CountingStream:
    import logging

    from chalicelib.observability import metrics_writer

    stream = _CountingStream()
    for logger in (logging.getLogger("tessera"), metrics_writer()):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
    return stream


def _reused(image_clients: Dict[str, Any]) -> List[str]:
    """Which of the image's clients this process still uses after its first request."""
    from chalicelib import aws
    from chalicelib.ai.gateway import default_gateway
    from chalicelib.models import table_connection

    now = {"kms": aws.client("kms"), "table": table_connection().connection.client}
    reused = [name for name, client in now.items() if image_clients.get(name) is client]
    model_clients = default_gateway().model_client._clients
    reused += [f"model:{digest[:8]}" for digest, client in image_clients.get("model", {}).items()
               if model_clients.get(digest) is client]
    return reused


def _signed_up(gw: Any, own_key: bool) -> Dict[str, str]:
    """A tenant signed up and logged in through the Lambda entry points; with its own Anthropic key."""
    import secrets as random_bytes

    from chalicelib import operators

    slug = f"restore-{random_bytes.token_hex(4)}"
    email, password = f"owner@{slug}.example.com", "restore-password-1"
    status, created = gw.request("POST", "/tenants", {"company_name": "Restore Co", "slug": slug, "email": email,
                                                      "password": password})
    assert status == 201, (status, created)
    status, login = gw.request("POST", "/auth/login", {"tenant": slug, "email": email, "password": password})
    assert status == 200, (status, login)
    token = login["access_token"]
    operators.set_limits(created["tenant_id"], {"features": {"basic_chat": 1_000_000},
                                                "requests_per_minute": 10_000})
    if own_key:
        status, answer = gw.request("PUT", "/tenant/ai-config/api-key", {"api_key": OWN_KEY}, token=token)
        assert status == 200, (status, answer)
    return {"tenant_id": created["tenant_id"], "token": token, "slug": slug, "email": email, "password": password}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moto-port", type=int, required=True)
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--dirty", action="store_true", help="serve one request before the snapshot")
    parser.add_argument("--cpu", type=float, default=None, help="each restore's share of one core")
    parser.add_argument("--mode", choices=sorted(MODES) + ["stream"], default="ai",
                        help="the first request each restore times")
    args = parser.parse_args(argv)
    if args.mode == "stream":
        if args.dirty:
            parser.error("--dirty has no stream mode: the adapter forwards no request before the snapshot")
        result = stream_scenario(args.moto_port, args.children, args.cpu)
    else:
        result = scenario(args.moto_port, args.children, args.dirty, args.cpu, args.mode)
    print("RESTORE_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

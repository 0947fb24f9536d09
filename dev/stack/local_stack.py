"""The local stack: moto in server mode as AWS, the Anthropic stand-in, and `chalice local`.

`make run` calls `main()`; the end-to-end tests start the same processes with
the same functions. Every process is started in its own process group and
stopped with it, so Ctrl-C leaves nothing running.
"""
from __future__ import annotations

import collections
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any, Deque, Dict, List, Mapping, Optional

ROOT = Path(__file__).resolve().parents[2]

REGION = "us-east-1"
ACCOUNT = "123456789012"
DEFAULT_PORTS = {"TESSERA_PORT": 8000, "MOTO_PORT": 5001, "ANTHROPIC_STANDIN_PORT": 8787}
LOCAL_JWT_SECRET = "local-only-jwt-secret-do-not-deploy"
LOCAL_OPERATOR_SECRET = "local-only-operator-secret-do-not-deploy"
STANDIN_POOL_KEY = "sk-standin-platform-pool"
SIGNING_SECRETS = {"TESSERA_JWT_SECRET_ID": "jwt", "TESSERA_OPERATOR_SECRET_ID": "operator"}
# What reaches the app from the caller when AWS_ENDPOINT_URL names the endpoint: where, who, which region.
CALLER_AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                        "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CA_BUNDLE",
                        "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
                        "AWS_REGION", "AWS_DEFAULT_REGION")


class SetupError(RuntimeError):
    """A setting `make run` cannot start with; the message says which and what to do."""


class PortTaken(SetupError):
    pass


# Where `make run` records the ports it serves on, so `make budget-check` finds the running stack.
STATE_FILE_VARIABLE = "TESSERA_STACK_STATE"


def state_file() -> Path:
    return Path(os.environ.get(STATE_FILE_VARIABLE) or ROOT / "build" / "local-stack.json")


def record_running(ports: Dict[str, Optional[int]]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), **ports}))


def running_stack() -> Optional[Dict[str, int]]:
    """The ports of the stack `make run` is serving, if its process is still alive."""
    try:
        state = json.loads(state_file().read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def forget_running() -> None:
    """Remove the record, unless another `make run` has written its own since."""
    try:
        if json.loads(state_file().read_text()).get("pid") == os.getpid():
            state_file().unlink()
    except (OSError, ValueError):
        pass


def stage_environment(stage: str = "local") -> Dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# Ports handed out by `free_port`, the newest still bound here so that no other process is given one meanwhile.
_RESERVED: Deque[socket.socket] = collections.deque()
_RESERVED_MOST = 256
_RESERVING = threading.Lock()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a server this process is about to start.

    On Linux the port stays bound here (with SO_REUSEADDR, not listening) after it is returned, until 256
    newer ones have been handed out. Meanwhile the kernel gives it to no socket that asks for any free port:
    not another test worker's `free_port`, nor a server started on port 0. A server started on this very port
    with SO_REUSEADDR (every `http.server` server: moto, the stand-in, the streaming function, the gateway,
    chalice local) still binds and listens there, and a connection to it before then is refused as to any
    port nothing listens on. Were the port let go at once, another worker's short-lived stack could be given
    it before this one's server bound it, answer this one's readiness check, and serve this stack's requests
    from its own moto until it stopped. (Elsewhere two sockets may share an address only with SO_REUSEPORT
    on both, so the port is let go at once there, as before.)"""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if not sys.platform.startswith("linux"):
        sock.close()
        return port
    with _RESERVING:
        while len(_RESERVED) >= _RESERVED_MOST:
            _RESERVED.popleft().close()
        _RESERVED.append(sock)
    return port


def require_free(port: int, variable: str) -> None:
    if not port_is_free(port):
        raise PortTaken(f"Port {port} is already in use. Free it or choose another with {variable}=<port>.")


def wait_for_http(url: str, timeout: float = 30.0, process: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{' '.join(process.args[:3])} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def terminate(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a process started by `_spawn` and everything in its process group."""
    try:
        # Signal the group even if its leader is gone: a child it left behind may still hold a port.
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _spawn(args: List[str], env: Dict[str, str], quiet: bool) -> subprocess.Popen:
    output = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(args, env=env, cwd=str(ROOT), start_new_session=True,
                            stdout=output, stderr=output)


def _ready(process: subprocess.Popen, url: str, timeout: float = 30.0) -> subprocess.Popen:
    """Wait until `process` answers at `url`; if it never does (or Ctrl-C comes first), stop it, so a
    failed start leaves nothing running that the caller does not know about."""
    try:
        wait_for_http(url, timeout=timeout, process=process)
    except BaseException:
        terminate(process)
        raise
    return process


def _inherited_environment(environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
    """The caller's environment (`environ`, os.environ by default) without its AWS and Anthropic settings:
    a developer's real profile, session token or per-service endpoint (AWS_ENDPOINT_URL_DYNAMODB,
    AWS_IGNORE_CONFIGURED_ENDPOINT_URLS), or a test session's endpoints, must never reach a stack that
    starts its own moto. (With AWS_ENDPOINT_URL, `caller_aws_environment` passes a chosen few on, on
    purpose.)"""
    return {k: v for k, v in environ.items() if not k.startswith(("AWS_", "ANTHROPIC_"))}


def start_moto(port: int, quiet: bool = True, *, contention: Optional[bool] = None,
               latency_ms: Optional[Dict[str, float]] = None, deploy_gaps: bool = False,
               environ: Mapping[str, str] = os.environ) -> subprocess.Popen:
    """Start dev/stack/moto_server.py. `contention` turns DynamoDB's conflict simulation on or off (None: as
    TESSERA_DDB_CONTENTION says); `latency_ms` sets its latency per kind ("read", "write", "transact");
    `deploy_gaps` adds what `chalice deploy` needs (dev/stack/moto_gaps.py); `environ` is the caller's
    environment (os.environ by default)."""
    args = [sys.executable, "-m", "dev.stack.moto_server", "-H", "127.0.0.1", "-p", str(port)]
    if deploy_gaps:
        args.append("--deploy-gaps")
    if contention is not None:
        args.append("--contention" if contention else "--no-contention")
    for kind, ms in (latency_ms or {}).items():
        args += [f"--latency-ms-{kind}", str(ms)]
    process = _spawn(args, {**_inherited_environment(environ), "MOTO_ALLOW_NONEXISTENT_REGION": "true"}, quiet)
    return _ready(process, f"http://127.0.0.1:{port}/moto-api/")


def start_standin(port: int, quiet: bool = True, environ: Mapping[str, str] = os.environ) -> subprocess.Popen:
    process = _spawn([sys.executable, "-m", "dev.standin", "--port", str(port)],
                     _inherited_environment(environ), quiet)
    return _ready(process, f"http://127.0.0.1:{port}/health")


def start_chalice_local(port: int, env: Dict[str, str], quiet: bool = True) -> subprocess.Popen:
    process = _spawn([sys.executable, "-m", "dev.stack.local_api", "local", "--stage", "local",
                      "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"], env, quiet)
    return _ready(process, f"http://127.0.0.1:{port}/health", timeout=60)


def start_api(port: int, env: Dict[str, str], quiet: bool = True) -> List[subprocess.Popen]:
    """The API at `port` as deployed: dev/stack/local_gateway.py sends POST /v1/messages and POST /ai/chat to the
    streaming function's app (chalicelib/stream_host), answered as produced, and the rest to chalice local."""
    chalice_port, stream_port = free_port(), free_port()
    app_env = {**env, **stage_environment("local")}
    processes = [start_chalice_local(chalice_port, env, quiet)]
    try:
        processes.append(_ready(_spawn([sys.executable, "-m", "chalicelib.stream_host", "--port", str(stream_port)],
                                       app_env, quiet), f"http://127.0.0.1:{stream_port}/health", timeout=60))
        processes.append(_ready(_spawn([sys.executable, "-m", "dev.stack.local_gateway", "--port", str(port),
                                        "--chalice-url", f"http://127.0.0.1:{chalice_port}",
                                        "--stream-url", f"http://127.0.0.1:{stream_port}"], app_env, quiet),
                                f"http://127.0.0.1:{port}/health", timeout=60))
    except BaseException:
        for process in reversed(processes):
            terminate(process)
        raise
    return processes


def start_stream_worker(env: Dict[str, str], quiet: bool = True) -> subprocess.Popen:
    """The usage stream's consumer and the reservation sweeper (what Lambda runs from the stream and
    the schedule in AWS): dev/stack/stream_worker.py."""
    return _spawn([sys.executable, "-m", "dev.stack.stream_worker"],
                  {**env, **stage_environment("local")}, quiet)


def aws_environment(moto_port: int) -> Dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def bootstrap(endpoint: str, stage_env: Dict[str, str], session: Any = None,
              signing_secrets: bool = False) -> Dict[str, str]:
    """Create what production's template creates, where it is missing: the table, the KMS key and alias,
    the alert topic and a verified sender; with `signing_secrets`, also the two signing keyrings in Secrets
    Manager (random values, named as in the deployed stages). Run twice, it finds everything and changes
    nothing. `session` holds the credentials (moto's "testing" ones by default). Returns the settings that
    locate what it made: the topic's ARN and, with `signing_secrets`, the secrets' ids."""
    import boto3

    from chalicelib.table import create_table

    session = session or boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                               region_name=REGION)
    create_table(session.client("dynamodb", endpoint_url=endpoint), stage_env["TESSERA_TABLE_NAME"])
    kms = session.client("kms", endpoint_url=endpoint)
    alias = stage_env["TESSERA_KMS_KEY_ID"]
    try:
        kms.describe_key(KeyId=alias)
    except kms.exceptions.NotFoundException:
        key_id = kms.create_key(Description="Tessera tenant API keys")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    topic_name = stage_env["TESSERA_ALERT_TOPIC_ARN"].rsplit(":", 1)[1]
    found = {"TESSERA_ALERT_TOPIC_ARN": session.client("sns", endpoint_url=endpoint).create_topic(
        Name=topic_name)["TopicArn"]}
    ses = session.client("ses", endpoint_url=endpoint)
    sender = stage_env["TESSERA_EMAIL_SENDER"]
    if sender not in ses.get_identity_verification_attributes(Identities=[sender])["VerificationAttributes"]:
        ses.verify_email_identity(EmailAddress=sender)
    s3 = session.client("s3", endpoint_url=endpoint)
    bucket = stage_env.get("TESSERA_EXPORT_BUCKET") or f"tessera-{stage_env.get('TESSERA_STAGE', 'local')}-exports"
    if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=bucket)  # tenant exports (chalicelib/offboarding.py)
    if signing_secrets:
        manager = session.client("secretsmanager", endpoint_url=endpoint)
        for variable, name in SIGNING_SECRETS.items():
            secret_id = f"tessera/{stage_env['TESSERA_STAGE']}/{name}"
            try:
                manager.describe_secret(SecretId=secret_id)
            except manager.exceptions.ResourceNotFoundException:
                manager.create_secret(Name=secret_id, SecretString=secrets.token_urlsafe(48))
            found[variable] = secret_id
    return found


def caller_aws_environment() -> Dict[str, str]:
    """The caller's AWS_ENDPOINT_URL, credentials and region, to pass on on purpose when the stack uses an
    endpoint it did not start. Per-service endpoints (AWS_ENDPOINT_URL_<SERVICE>) stay behind, so every
    service goes to the one endpoint announced; the region is made explicit, as bootstrap used it."""
    import boto3

    env = {k: os.environ[k] for k in CALLER_AWS_VARIABLES if os.environ.get(k)}
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or boto3.session.Session().region_name
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region or REGION
    return env


def use_endpoint(endpoint: str) -> Dict[str, str]:
    """Make an AWS endpoint the caller gave (LocalStack, an AWS account, a proxy in front of moto) ready:
    create what is missing there with the caller's credentials, and return the environment that reaches
    it and locates what `bootstrap` found."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    aws = caller_aws_environment()
    try:
        found = bootstrap(endpoint, stage_environment(), boto3.session.Session(region_name=aws["AWS_REGION"]),
                          signing_secrets=True)
    except (BotoCoreError, ClientError) as error:
        raise RuntimeError(f"the AWS endpoint {endpoint} (AWS_ENDPOINT_URL) refused the set-up: {error}") from None
    return {**aws, **found}


def local_signing_secrets(environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
    """The keyrings when the stack starts its own moto: the caller's, or the documented local-only ones."""
    return {"TESSERA_JWT_SECRET": environ.get("TESSERA_JWT_SECRET", LOCAL_JWT_SECRET),
            "TESSERA_OPERATOR_SECRET": environ.get("TESSERA_OPERATOR_SECRET", LOCAL_OPERATOR_SECRET)}


def app_environment(aws: Dict[str, str], anthropic_base_url: Optional[str], platform_keys: str,
                    environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
    """The app's environment: the caller's (`environ`, os.environ by default) without its AWS and Anthropic
    settings, then the local stage's variables from .chalice/config.json (in the process from its start, as
    Lambda sets a function's), then `aws` (where AWS is, its keyrings and what bootstrap found there), the
    platform key pool and the model upstream."""
    env = {**_inherited_environment(environ), **stage_environment("local"), **aws,
           "TESSERA_PLATFORM_KEYS": platform_keys}
    if anthropic_base_url:
        env["ANTHROPIC_BASE_URL"] = anthropic_base_url
    return env


def load_standin() -> ModuleType:
    """The stand-in's server module (dev/standin/server.py), for running it on a thread of this process."""
    from dev.standin import server

    return server


def run_app_in_process(moto_port: int, standin_url: str, jwt_secret: str, operator_secret: str,
                       platform_keys: str) -> None:
    """Point this process at a local stack so the app runs in it, as the tests and the benchmark do: the
    local stage's settings, moto as AWS, the stand-in as upstream, and no SDK retries."""
    os.environ.update(aws_environment(moto_port))
    os.environ.update(stage_environment("local"))
    os.environ.update({
        "TESSERA_JWT_SECRET": jwt_secret,
        "TESSERA_OPERATOR_SECRET": operator_secret,
        "TESSERA_PLATFORM_KEYS": platform_keys,
        "ANTHROPIC_BASE_URL": standin_url,
        "TESSERA_BEDROCK_BASE_URL": standin_url,
        "TESSERA_ANTHROPIC_MAX_RETRIES": "0",
    })
    os.environ.pop("ANTHROPIC_API_KEY", None)
    from chalicelib.settings import reset_settings

    reset_settings()


class LocalStack:
    """Start and stop the local stack; usable as a context manager. With `aws_endpoint` (the caller's
    AWS_ENDPOINT_URL) it starts no moto and uses that endpoint, with the caller's credentials. `environ` is
    the environment the stack's processes inherit from (os.environ by default): a caller that wants them to
    see another one passes it here rather than changing its own process's, which its threads may read.
    (With `aws_endpoint`, the caller's AWS credentials are still os.environ's, where boto3 reads them.)"""

    def __init__(self, api_port: int, moto_port: Optional[int], standin_port: Optional[int], quiet: bool = True,
                 aws_endpoint: Optional[str] = None, environ: Mapping[str, str] = os.environ) -> None:
        self.api_port, self.moto_port, self.standin_port, self.quiet = api_port, moto_port, standin_port, quiet
        self.aws_endpoint = aws_endpoint
        self.environ = environ
        self.processes: List[subprocess.Popen] = []
        self.env: Dict[str, str] = {}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def aws_url(self) -> str:
        return self.aws_endpoint or f"http://127.0.0.1:{self.moto_port}"

    @property
    def standin_url(self) -> Optional[str]:
        return f"http://127.0.0.1:{self.standin_port}" if self.standin_port else None

    def start(self) -> "LocalStack":
        try:
            if self.aws_endpoint:
                aws = use_endpoint(self.aws_endpoint)
            else:
                self.processes.append(start_moto(self.moto_port, self.quiet, environ=self.environ))
                bootstrap(self.aws_url, stage_environment())
                aws = {**aws_environment(self.moto_port), **local_signing_secrets(self.environ)}
            if self.standin_port:
                self.processes.append(start_standin(self.standin_port, self.quiet, self.environ))
                # the stand-in answers Bedrock's runtime API too (dev/standin/bedrock.py): pool calls fail over there
                self.env = {**app_environment(aws, self.standin_url, STANDIN_POOL_KEY, self.environ),
                            "TESSERA_BEDROCK_BASE_URL": self.standin_url}
            else:  # with a real Anthropic key and local AWS, no Bedrock is reachable: failover off unless asked
                self.env = {"TESSERA_BEDROCK_FAILOVER": "off",
                            **app_environment(aws, self.environ.get("ANTHROPIC_BASE_URL"),
                                              self.environ["ANTHROPIC_API_KEY"], self.environ)}
            self.processes.append(start_stream_worker(self.env, self.quiet))
            self.processes.extend(start_api(self.api_port, self.env, self.quiet))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the app first, then what it talks to. Safe to call twice."""
        while self.processes:
            terminate(self.processes[-1])
            self.processes.pop()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def operator_token(env: Dict[str, str]) -> str:
    """An operator token signed with the app's keyring (read from Secrets Manager when `env` names it).

    The caller's environment, settings and AWS clients are left as they were: a test process that asks
    a stack for its token must not go on talking to that stack's AWS once it stops."""
    from chalicelib import aws
    from chalicelib.identity.tokens import issue_operator_token
    from chalicelib.settings import reset_settings

    saved = dict(os.environ)
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith(("TESSERA_OPERATOR_SECRET", "AWS_"))})
        os.environ.update(stage_environment())
        reset_settings()
        aws.client.cache_clear()
        return issue_operator_token("local-operator")
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
        aws.client.cache_clear()


def _port(variable: str) -> int:
    value = os.environ.get(variable, str(DEFAULT_PORTS[variable])).strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise PortTaken(f"{variable} must be a port number from 1 to 65535, not {value!r}.")
    return int(value)


def _aws_endpoint() -> Optional[str]:
    """AWS_ENDPOINT_URL, when the caller names an AWS endpoint for the stack to use instead of a moto."""
    value = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    if value and not value.startswith(("http://", "https://")):
        raise SetupError(f"AWS_ENDPOINT_URL must be an http:// or https:// URL, not {value!r}.")
    return value or None


def _distinct(ports: Dict[str, Optional[int]]) -> None:
    seen: Dict[int, str] = {}
    for variable, port in ports.items():
        if port is None:
            continue
        if port in seen:
            raise PortTaken(f"{seen[port]} and {variable} are both {port}; give each its own port.")
        seen[port] = variable


def main() -> int:
    try:
        aws_endpoint = _aws_endpoint()
        api_port = _port("TESSERA_PORT")
        moto_port = None if aws_endpoint else _port("MOTO_PORT")
        use_standin = not os.environ.get("ANTHROPIC_API_KEY")
        standin_port = _port("ANTHROPIC_STANDIN_PORT") if use_standin else None
        _distinct({"TESSERA_PORT": api_port, "MOTO_PORT": moto_port, "ANTHROPIC_STANDIN_PORT": standin_port})
        require_free(api_port, "TESSERA_PORT")
        if moto_port:
            require_free(moto_port, "MOTO_PORT")
        if standin_port:
            require_free(standin_port, "ANTHROPIC_STANDIN_PORT")
    except SetupError as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    if aws_endpoint:
        print(f"make run: AWS is {aws_endpoint} (AWS_ENDPOINT_URL), with your credentials; no moto is started.",
              flush=True)
    started = time.monotonic()
    stack = LocalStack(api_port, moto_port, standin_port, quiet=False, aws_endpoint=aws_endpoint)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C or SIGTERM interrupts whatever is happening, startup included; every process started
    # so far is stopped on the way out (a half-started one by `_ready`, the rest by `stack.stop`).
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        stack.start()
        record_running({"TESSERA_PORT": api_port, "MOTO_PORT": moto_port, "ANTHROPIC_STANDIN_PORT": standin_port})
        upstream = stack.standin_url or stack.env.get("ANTHROPIC_BASE_URL") or "Anthropic's API"
        print("\n" + "\n".join([
            f"Tessera is running at {stack.api_url} (ready in {time.monotonic() - started:.1f} s)",
            f"  console:            {stack.api_url}/console",
            f"  AWS endpoint:       {aws_endpoint} (AWS_ENDPOINT_URL; not started here)" if aws_endpoint
            else f"  local AWS (moto):   {stack.aws_url}",
            f"  model upstream:     {upstream}{' (stand-in)' if stack.standin_url else ''}",
            f"  operator token:     {operator_token(stack.env)}",
            "Press Ctrl-C to stop everything.",
        ]), flush=True)
        while all(p.poll() is None for p in stack.processes):
            time.sleep(0.2)
        print("make run: a local process exited; stopping the rest.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError, OSError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        forget_running()
        stack.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())

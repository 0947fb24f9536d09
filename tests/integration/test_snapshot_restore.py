"""SnapStart: two instances restored from one snapshot share no request ids, random state, decrypted key
cache, secret or HTTP connection, and the hooks are registered by importing app.py.

dev/bench/restore.py does what Lambda does for the REST API's function, against the session's moto: init
(`import app`), one AI request served before the snapshot (so the image holds open connections, a
decrypted tenant key and a cached secret: the worst an init could leave), the before-snapshot hooks,
then two restores, each a fork of that image running the after-restore hooks and a first AI request.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def restores(moto_port, *options):
    """dev/bench/restore.py's image and its two restores, each of which answered its first request."""
    result = subprocess.run([sys.executable, "-m", "dev.bench.restore", "--moto-port", str(moto_port),
                             "--children", "2", *options], cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESTORE_RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-2000:] + result.stderr[-4000:]
    found = json.loads(lines[-1].split(" ", 1)[1])
    for restore in found["restores"]:
        assert "error" not in restore, restore["error"]
        assert restore["status"] == 200, restore
    return found["image"], found["restores"]


@pytest.fixture(scope="module")
def restored(moto_server):
    return restores(moto_server[1], "--dirty")


def test_the_image_holds_what_a_restore_must_not_share(restored):
    """The precondition the other tests rely on: the snapshot is taken with all of it in memory."""
    image, _ = restored
    assert image["anthropic_imported"] and image["upstream_ports"] and image["plain_keys"] == 1
    assert image["secret"] == "value-at-snapshot"


def test_restored_instances_give_distinct_request_ids(restored):
    """Compared without their time prefix (req_ + 12 hex digits of milliseconds): the restores run one after
    another, so the time alone would make them differ; the random part must too."""
    image, (first, second) = restored
    ids = [image["request_id"], first["request_id"], second["request_id"], first["new_request_id"],
           second["new_request_id"]]
    random_parts = [request_id[len("req_") + 12:] for request_id in ids]
    assert all(random_parts) and len(set(random_parts)) == len(ids), ids


def test_restored_instances_do_not_share_random_state(restored):
    _, (first, second) = restored
    assert first["random"] != second["random"]


def test_restored_instances_decrypt_the_tenants_key_themselves(restored):
    _, restores = restored
    for restore in restores:
        assert restore["plain_keys_after_restore"] == 0, restore
        assert restore["plain_keys_after_request"] == 1 and restore["upstream_key"], restore


def test_restored_instances_read_secrets_afresh(restored):
    """The secret changed after the snapshot: a restore must see the new value, not the image's cache."""
    _, restores = restored
    assert [r["secret"] for r in restores] == ["value-after-snapshot"] * 2


def test_restored_instances_open_their_own_connections(restored):
    """Each restore reaches the upstream from a port of its own (a new TCP connection), never through the
    image's kept-alive socket, and builds its own AWS and SDK clients."""
    image, (first, second) = restored
    ports = [first["upstream_port"], second["upstream_port"]]
    assert len(set(ports)) == 2 and not set(ports) & set(image["upstream_ports"]), (ports, image["upstream_ports"])
    assert first["image_clients_reused"] == second["image_clients_reused"] == []


def test_importing_app_registers_the_hooks_with_the_runtime():
    code = ("import snapshot_restore_py as r, app; from chalicelib import snapshot; "
            "print([f.__qualname__ for f, _, _ in r.get_before_snapshot()], "
            "[f.__qualname__ for f, _, _ in r.get_after_restore()])")
    result = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "['before_snapshot'] ['after_restore']", result.stderr[-2000:]


def test_the_authorizers_snapshot_leaves_the_sdk_out():
    """Only the REST API's function imports anthropic before its snapshot: an authorizer's image stays small."""
    code = ("import os, sys, app; from chalicelib import snapshot; os.environ['_HANDLER'] = '{}'; "
            "snapshot.before_snapshot(); print('anthropic' in sys.modules)")
    for handler, imported in (("app.tenant_auth", "False"), ("app.app", "True")):
        result = subprocess.run([sys.executable, "-c", code.format(handler)], cwd=str(ROOT), capture_output=True,
                                text=True, timeout=120, env=dict(os.environ))
        assert result.stdout.strip() == imported, (handler, result.stderr[-2000:])



@pytest.fixture(scope="module")
def restored_streams(moto_server):
    """The streaming function's image (run.sh's start-up under the adapter, no request before the snapshot, no
    runtime hook), restored twice, each restore's first request sent as the adapter sends it."""
    return restores(moto_server[1], "--mode", "stream")


def test_the_streaming_functions_image_is_primed_without_the_rest_api(restored_streams):
    image, _ = restored_streams
    assert image["anthropic_imported"] and not image["app_imported"]
    assert not image["made_own_before_snapshot"] and image["secret"] == "value-at-snapshot"


def test_restored_streaming_instances_share_nothing(restored_streams):
    """No runtime hook runs under the adapter: the app's first request alone makes each restore its own."""
    image, (first, second) = restored_streams
    assert first["random"] != second["random"]
    ids = [image["request_id"], first["request_id"], second["request_id"], first["new_request_id"],
           second["new_request_id"]]
    assert len({request_id[len("req_") + 12:] for request_id in ids}) == len(ids), ids
    assert [r["secret"] for r in (first, second)] == ["value-after-snapshot"] * 2
    for restore in (first, second):
        assert restore["plain_keys_after_restore"] == 0 and restore["plain_keys_after_request"] == 1
        assert restore["upstream_key"], restore
    assert first["upstream_port"] != second["upstream_port"]


FIRST_REQUEST = """
import os, random, threading
from chalicelib import secrets, snapshot

def drawn_after(made_own, seed=7):
    random.seed(seed)
    secrets._cache["probe"] = (0, "held at snapshot")  # what an image might hold
    threads = [threading.Thread(target=made_own) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [random.random() == random.Random(seed).random(), "probe" in secrets._cache]

on_demand = drawn_after(snapshot.OnFirstRequest())
os.environ[snapshot.INITIALIZATION_TYPE] = snapshot.RESTORED
restored = snapshot.OnFirstRequest()
print([on_demand, drawn_after(restored), drawn_after(restored)])
"""


def test_the_first_request_makes_a_restored_instance_its_own_once():
    """Only where Lambda says the environment was restored (`[True, True]`: random's state and a cached secret
    untouched); once, whichever of eight threads asks first (`[False, False]`, then untouched)."""
    result = subprocess.run([sys.executable, "-c", FIRST_REQUEST], cwd=str(ROOT), capture_output=True, text=True,
                            timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_INITIALIZATION_TYPE"})
    assert result.stdout.strip() == str([[True, True], [False, False], [True, True]]), result.stderr[-2000:]

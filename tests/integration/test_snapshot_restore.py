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


@pytest.fixture(scope="module")
def restored(moto_server):
    _, port = moto_server
    result = subprocess.run([sys.executable, "-m", "dev.bench.restore", "--moto-port", str(port),
                             "--children", "2", "--dirty"], cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESTORE_RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-2000:] + result.stderr[-4000:]
    found = json.loads(lines[-1].split(" ", 1)[1])
    for restore in found["restores"]:
        assert "error" not in restore, restore["error"]
        assert restore["status"] == 200, restore
    return found["image"], found["restores"]


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


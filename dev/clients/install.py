"""The real Anthropic clients the end-to-end tests run, installed from dev/clients/'s lock file.

    python -m dev.clients.install        (or `make clients`)

installs `@anthropic-ai/claude-code` (headless `claude -p`) and `@anthropic-ai/sdk` at the versions
dev/clients/package-lock.json pins, with `npm ci`, into build/clients/. It does nothing when that
lock is already installed there. Install scripts are off (`--ignore-scripts`) but for Claude Code's own,
named here, which links the platform's native binary (an optional dependency) into place.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "dev" / "clients"
TARGET = ROOT / "build" / "clients"
STAMP = TARGET / ".installed"


def _lock_digest() -> str:
    return hashlib.sha256((MANIFEST / "package-lock.json").read_bytes()).hexdigest()


def claude_path() -> Path:
    return TARGET / "node_modules" / ".bin" / "claude"


def install() -> Path:
    """Install the pinned clients unless they already are; returns the `claude` executable."""
    digest = _lock_digest()
    if STAMP.exists() and STAMP.read_text() == digest and claude_path().exists():
        return claude_path()
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed to install the clients (dev/clients/package.json)")
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(MANIFEST / name, TARGET / name)
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(TARGET)],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["node", "install.cjs"], cwd=TARGET / "node_modules" / "@anthropic-ai" / "claude-code",
                   check=True, stdout=subprocess.DEVNULL)
    STAMP.write_text(digest)
    return claude_path()


if __name__ == "__main__":
    print(install())
    sys.exit(0)

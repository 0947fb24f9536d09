"""The real Anthropic clients the end-to-end tests run (Claude Code, the TypeScript SDK), pinned in this folder's
package-lock.json and installed by `make clients` (`python -m dev.clients.install`) into build/clients/."""

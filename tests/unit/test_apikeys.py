"""Tenant API keys: `tsk_<tenant_id>.<key_id>.<secret>`, a 256-bit secret stored only as its SHA-256 digest."""
from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest

from chalicelib.identity.apikeys import ParsedKey, digest, generate, looks_like_key, matches, parse


def test_a_generated_key_names_its_tenant_and_key_and_carries_a_256_bit_secret():
    key_id, key, stored = generate("ten_abc")
    prefix, tenant_id, rest = key[:4], key[4:].split(".")[0], key[4:].split(".")[1:]
    assert (prefix, tenant_id, rest[0]) == ("tsk_", "ten_abc", key_id)
    assert re.fullmatch(r"key_[0-9a-f]{20}", key_id)
    secret = rest[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)  # 32 random bytes, URL-safe base64 without padding
    assert stored == hashlib.sha256(secret.encode()).hexdigest()


def test_two_keys_never_share_an_id_or_a_secret():
    first, second = generate("ten_abc"), generate("ten_abc")
    assert first[0] != second[0] and first[1].rsplit(".", 1)[1] != second[1].rsplit(".", 1)[1]


def test_the_digest_is_sha256_hex():
    assert digest("secret") == "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"


def test_a_generated_key_parses_back_into_its_parts():
    key_id, key, stored = generate("ten_abc")
    parsed = parse(key)
    assert parsed == ParsedKey("ten_abc", key_id, key.rsplit(".", 1)[1])
    assert matches(stored, parsed.secret)


def test_a_parsed_key_cannot_be_changed():
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse("tsk_t.k.s").tenant_id = "ten_other"


@pytest.mark.parametrize("token", ["tsk_t.k", "tsk_t.k.s.x", "tsk_.k.s", "tsk_t..s", "tsk_t.k.", "tsk_", "tsk_t",
                                   "ten_t.k.s", "eyJhbGciOi.x.y", "TSK_t.k.s"])
def test_anything_but_three_non_empty_parts_after_the_prefix_is_not_a_key(token):
    assert parse(token) is None


@pytest.mark.parametrize("token, is_key", [("tsk_t.k.s", True), ("tsk_", True), ("eyJ.a.b", False),
                                           ("TSK_t.k.s", False), ("xtsk_t.k.s", False), ("", False)])
def test_only_the_prefix_says_whether_a_token_is_meant_as_a_key(token, is_key):
    assert looks_like_key(token) is is_key


def test_matches_only_the_secret_the_digest_was_made_from():
    stored = digest("the-secret")
    assert matches(stored, "the-secret") is True
    assert matches(stored, "the-secreT") is False
    assert matches(stored, "") is False

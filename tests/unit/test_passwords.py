"""Passwords: argon2id with OWASP's parameters written into each hash, and a dummy verification for
unknown users that costs what a real one costs."""
from __future__ import annotations

import base64
import time

import pytest

from chalicelib.identity.passwords import burn_verification_time, hash_password, verify_password

pytestmark = pytest.mark.owasp_argon2  # the parameters production hashes with (tests/conftest.py: least_argon2_cost)


def decoded(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def test_a_hash_is_argon2id_with_19_mib_two_passes_one_lane_a_16_byte_salt_and_a_32_byte_digest():
    _, variant, version, parameters, salt, digest = hash_password("correct-horse-battery").split("$")
    assert (variant, version, parameters) == ("argon2id", "v=19", "m=19456,t=2,p=1")
    assert (len(decoded(salt)), len(decoded(digest))) == (16, 32)


def test_the_same_password_hashes_differently_each_time():
    assert hash_password("correct-horse-battery") != hash_password("correct-horse-battery")


def test_a_hash_verifies_its_password_and_nothing_else():
    stored = hash_password("correct-horse-battery")
    assert verify_password(stored, "correct-horse-battery") is True
    assert verify_password(stored, "correct-horse-batterY") is False
    assert verify_password(stored, "") is False


@pytest.mark.parametrize("stored", ["", "not-a-hash", "$argon2id$v=19$m=19456,t=2,p=1$broken"])
def test_a_malformed_stored_hash_never_verifies(stored):
    assert verify_password(stored, "correct-horse-battery") is False


def test_the_dummy_verification_for_an_unknown_user_takes_as_long_as_a_real_one():
    stored = hash_password("correct-horse-battery")
    burn_verification_time("warm-up")  # the dummy hash is made once, on first use

    def fastest(run):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)

    real = fastest(lambda: verify_password(stored, "wrong-password-1"))
    dummy = fastest(lambda: burn_verification_time("wrong-password-1"))
    assert dummy > real / 3, (dummy, real)

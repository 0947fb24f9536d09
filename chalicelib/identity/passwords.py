"""Password hashing with argon2id.

Parameters follow OWASP's argon2id recommendation (19 MiB memory, 2 passes,
parallelism 1) and are written into each hash, so raising them later still
verifies old hashes and `needs_rehash` can upgrade them at login.
"""
from __future__ import annotations

import functools
import unicodedata

MIN_LENGTH = 10  # counted in visible characters: spaces and control characters are allowed but do not count
MAX_LENGTH = 256
TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1


@functools.lru_cache(maxsize=1)
def _hasher():
    from argon2 import PasswordHasher, Type

    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB,
                          parallelism=PARALLELISM, hash_len=32, salt_len=16, type=Type.ID)


def visible_characters(password: str) -> int:
    """What a person meaningfully typed: characters that are neither whitespace nor control characters.
    Ten spaces, or a tab and a NUL padding a short word, do not make a ten-character password."""
    return sum(1 for c in password if not c.isspace() and unicodedata.category(c) != "Cc")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("tessera-timing-equaliser")


def burn_verification_time(password: str) -> None:
    """Spend a verification's time when there is no user, so timing does not reveal which emails exist."""
    verify_password(_dummy_hash(), password)

"""chalicelib/metering/limits.py over plain values: what an admission item keeps of a tenant's limits."""
from __future__ import annotations

import hashlib

from chalicelib.metering.limits import principal_bit


def test_a_principals_bit_is_the_first_32_bits_of_the_sha256_of_its_id_modulo_128():
    """Admission items keep these bits from one deploy to the next: under another derivation, an item already
    written would hold a budgeted key's bit where the new code does not look, and admit it unbudgeted."""
    for principal_id in ("key_a", "01JEX5Q2R8ZB4M7T9V3N6P1K0D", "user-7f3a"):
        digest = hashlib.sha256(principal_id.encode("utf-8")).digest()
        assert principal_bit(principal_id) == int.from_bytes(digest[:4], "big") % 128, principal_id

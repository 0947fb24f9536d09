"""Counter keys (chalicelib/metering/counter_keys.py): each format as docs/data-model.md and the stored items
have it, read back the same way, and built nowhere else."""
import re
from pathlib import Path

import pytest

from chalicelib.metering import counter_keys as keys

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("built, expected", [
    (keys.admitted_key("2026-11", "basic_chat"), "a:2026-11:b"),
    (keys.committed_key("2026-11"), "w:2026-11"),
    (keys.minute_key(29_512_345), "m:29512345"),
    (keys.slot_key(29_512_345, 11), "s:29512345:11"),
    (keys.bucket_count_key(2_951_234, "code_review"), "n:2951234:c"),
    (keys.bucket_worst_key(2_951_234, "document_analysis"), "v:2951234:d"),
    (keys.refunded_key("2026-11"), "r:2026-11"),
    (keys.released_key("2026-11", "custom_prompts"), "q:2026-11:p"),
    (keys.reclaimed_key(2_951_234, "basic_chat"), "x:2951234:b"),
    (keys.principal_admitted_key("2026-11"), "a:2026-11"),
    (keys.principal_committed_key("2026-11"), "w:2026-11"),
])
def test_each_key_has_its_stored_format(built, expected):
    assert built == expected


def test_a_key_reads_back_as_its_kind_mark_and_rest():
    assert keys.parse("n:2951234:c") == ("n", "2951234", "c")
    assert keys.parse("w:2026-11") == ("w", "2026-11", "")
    assert keys.slot_of("s:29512345:11") == (29_512_345, 11)
    assert keys.slot_of("m:29512345") is None and keys.slot_of("n:2951234:b") is None


def test_a_buckets_features_and_the_buckets_counted_are_read_from_the_bucket_count_keys_only():
    counters = {"n:100:b": 1, "n:100:d": 2, "v:100:c": 5, "n:101:c": 1, "x:100:p": 1, "w:2026-11": 9}
    assert keys.bucket_features(counters, 100) == ["basic_chat", "document_analysis"]
    assert keys.bucket_features(counters, 10) == []  # n:100 is not bucket 10's
    assert keys.counted_buckets(counters) == {100, 101}


def test_no_other_module_of_the_product_builds_a_counter_key():
    built = re.compile(r"""f["'][amswnvrqxt]:\{|["'][amswnvrqxt]:["']""")
    found = [f"{path.relative_to(ROOT)}:{number}" for path in sorted((ROOT / "chalicelib").rglob("*.py"))
             if path.name != "counter_keys.py"
             for number, line in enumerate(path.read_text().splitlines(), start=1) if built.search(line)]
    assert found == [], "build and read counter keys in chalicelib/metering/counter_keys.py"

"""The keys of the counters maps, built and read here only.

Three items keep counters in a map, one number per key (an `ADD` to a key the map lacks starts it at 0):

    item                      key                       counts
    admission (ADMISSION)     a:<period>:<feature>      calls admitted in the month, per feature
                              w:<period>                worst cases committed in the month (micro-dollars)
                              m:<minute>                calls of a closed minute (the rate window's total)
                              s:<minute>:<slot>         calls of a 5-second slot (the rate window)
                              n:<bucket>:<feature>      reservations made in a 10-minute sweep bucket
                              v:<bucket>:<feature>      their worst cases (micro-dollars)
    reconciliation            r:<period>                worst case given back by settled calls (micro-dollars)
                              q:<period>:<feature>      admissions given back (failed calls)
                              n:<bucket>:<feature>      reservations settled, per sweep bucket
                              v:<bucket>:<feature>      their worst cases
                              x:<bucket>:<feature>      1 once the sweeper has reclaimed the bucket
    a principal's budget      a:<period>                calls admitted in the month
                              w:<period>                worst cases committed in the month

A period is `YYYY-MM`, a minute and a bucket are epoch seconds // 60 and // 600, a slot 0-11, a feature its
one-letter code (chalicelib/plans.py). `t:` keys were the rate tails of an earlier scheme: stale on sight.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Set, Tuple

from chalicelib.plans import FEATURE_BY_CODE, FEATURES

ADMITTED, COMMITTED, MINUTE, SLOT = "a", "w", "m", "s"
BUCKET_COUNT, BUCKET_WORST = "n", "v"
REFUNDED, RELEASED, RECLAIMED = "r", "q", "x"
RETIRED_TAIL = "t"


# --- the admission item ------------------------------------------------------------------------------

def admitted_key(period: str, feature: str) -> str:
    return f"{ADMITTED}:{period}:{FEATURES[feature].code}"


def committed_key(period: str) -> str:
    return f"{COMMITTED}:{period}"


def minute_key(minute: int) -> str:
    return f"{MINUTE}:{minute}"


def slot_key(minute: int, slot: int) -> str:
    return f"{SLOT}:{minute}:{slot}"


def bucket_count_key(bucket: int, feature: str) -> str:
    return f"{BUCKET_COUNT}:{bucket}:{FEATURES[feature].code}"


def bucket_worst_key(bucket: int, feature: str) -> str:
    return f"{BUCKET_WORST}:{bucket}:{FEATURES[feature].code}"


# --- the reconciliation item (and the bucket keys above) ----------------------------------------------

def refunded_key(period: str) -> str:
    return f"{REFUNDED}:{period}"


def released_key(period: str, feature: str) -> str:
    return f"{RELEASED}:{period}:{FEATURES[feature].code}"


def reclaimed_key(bucket: int, feature: str) -> str:
    return f"{RECLAIMED}:{bucket}:{FEATURES[feature].code}"


# --- a principal's budget item -------------------------------------------------------------------------

def principal_admitted_key(period: str) -> str:
    return f"{ADMITTED}:{period}"


def principal_committed_key(period: str) -> str:
    return f"{COMMITTED}:{period}"


# --- reading keys back ---------------------------------------------------------------------------------

def parse(key: str) -> Tuple[str, str, str]:
    """(kind, mark, rest): `n:29000000:b` gives ("n", "29000000", "b"), `w:2026-11` ("w", "2026-11", "")."""
    kind, _, tail = key.partition(":")
    mark, _, rest = tail.partition(":")
    return kind, mark, rest


def bucket_features(counters: Dict[str, int], bucket: int) -> List[str]:
    """The features with reservations counted in a sweep bucket."""
    return sorted(FEATURE_BY_CODE[rest] for kind, mark, rest in map(parse, counters)
                  if kind == BUCKET_COUNT and mark == str(bucket))


def counted_buckets(keys: Iterable[str]) -> Set[int]:
    """The sweep buckets with reservations counted among `keys`."""
    return {int(mark) for kind, mark, _ in map(parse, keys) if kind == BUCKET_COUNT}


def slot_of(key: str) -> Optional[Tuple[int, int]]:
    """(minute, slot) of a rate slot's key; None for any other key."""
    kind, mark, rest = parse(key)
    return (int(mark), int(rest)) if kind == SLOT else None

"""Measurements, not tests: `make bench` (`python -m dev.bench`) writes docs/performance.md, `python -m
dev.bench.cost` docs/cost.md; the DynamoDB probe (probes.py) is shared with the tests that count round trips.
"""

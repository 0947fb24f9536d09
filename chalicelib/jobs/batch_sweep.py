"""The batch sweep: settles Message Batches nobody reads, so their usage reaches the ledger anyway.

Every open batch has a mark in one partition (`BATCHES#OPEN`, written with the batch, deleted when it
is settled). Every 10 minutes (app.py) each marked batch is observed as a tenant's read would observe
it (chalicelib/ai/batches.py): refreshed from upstream and, once ended, settled exactly once. Upstream
ends every batch within 24 hours, so a batch's usage is in the ledger within about 24 hours and 10
minutes of its creation even if its tenant never asks. A batch whose check fails (upstream down, its
key removed) stays marked and is tried again on the next run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from chalicelib.ai import batches
from chalicelib.ai.gateway import Gateway, default_gateway
from chalicelib.errors import TesseraError
from chalicelib.logs import get_logger
from chalicelib.models import tenant_pk
from chalicelib.records import MessageBatch, OpenBatch

log = get_logger("batch_sweep")


@dataclass
class Report:
    open: int = 0
    settled: int = 0
    failed: int = 0

    def summary(self) -> dict:
        return {"open": self.open, "settled": self.settled, "failed": self.failed}


def sweep_batches(gateway: Optional[Gateway] = None) -> Report:
    gateway = gateway or default_gateway()
    report = Report()
    for mark in OpenBatch.query(OpenBatch.PARTITION, consistent_read=True):
        report.open += 1
        try:
            item = MessageBatch.get(tenant_pk(mark.tenant_id), MessageBatch.sk_for(mark.batch_id),
                                    consistent_read=True)
        except MessageBatch.DoesNotExist:
            mark.delete()  # its batch item was never written (a failed creation transaction)
            continue
        try:
            item, _ = batches.observe(gateway, item)
        except TesseraError as error:
            report.failed += 1
            log.warning("batch not checked", extra={"fields": {"tenant_id": mark.tenant_id,
                                                               "batch_id": mark.batch_id, "code": error.code}})
            continue
        report.settled += item.settled_at is not None
    return report

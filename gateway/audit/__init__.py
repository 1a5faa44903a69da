"""The audit log of every read: the writer (``log``), the file format (``format``) and its
verification (``verify``). The command line is ``gateway.cli.audit``."""

from gateway.audit.format import COLUMNS, DROPPED_PATH, FORMAT, QUEUE_FULL, UNSTORABLE, ZERO_HASH, Entry, Row
from gateway.audit.log import AuditLog, AuditStatus
from gateway.audit.verify import VerifyReport, format_entry, head, tail, verify

__all__ = [
    "COLUMNS",
    "DROPPED_PATH",
    "FORMAT",
    "QUEUE_FULL",
    "UNSTORABLE",
    "ZERO_HASH",
    "AuditLog",
    "AuditStatus",
    "Entry",
    "Row",
    "VerifyReport",
    "format_entry",
    "head",
    "tail",
    "verify",
]

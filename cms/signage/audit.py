"""The audit trail: who did what, for which partner account, on which node.

Where entries are kept is pluggable, like Django's session backends: ``AuditSink`` states
the contract, ``settings.CMS_AUDIT_SINK`` names the class in use. ``FileAuditSink`` is what
the original single-server app did.
"""

import functools
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from .lab_classes import import_lab_class


@dataclass
class AuditEntry:
    """One audit event. ``at`` is an aware UTC datetime; ``account`` is the account's slug."""

    id: str
    at: datetime
    account: str
    username: str
    action: str
    detail: dict
    node: str

    def to_dict(self) -> dict:
        return {**asdict(self), "at": self.at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict) -> "AuditEntry":
        return cls(**{**data, "at": datetime.fromisoformat(data["at"])})


class AuditSink:
    """Keeps audit entries and gives back an account's whole trail.

    ``record()`` keeps one entry. ``events_for_account()`` returns every entry ever
    recorded for that account, oldest first, whichever node recorded it: the audit report
    is the same whichever node serves it.

    Subclasses are instantiated with no arguments (see ``get_sink()``).
    """

    def record(self, entry: AuditEntry) -> None:
        raise NotImplementedError

    def events_for_account(self, account_slug: str) -> list[AuditEntry]:
        raise NotImplementedError


class FileAuditSink(AuditSink):
    """One JSON line per entry in ``<directory>/audit-YYYY-MM-DD.log``, one file per day."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def record(self, entry: AuditEntry) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry.to_dict()) + "\n").encode()
        path = self.directory / f"audit-{entry.at:%Y-%m-%d}.log"
        # Append mode and one unbuffered write per line: lines written by concurrent
        # processes of this machine do not interleave, without any lock.
        with open(path, "ab", buffering=0) as log:
            log.write(line)

    def events_for_account(self, account_slug: str) -> list[AuditEntry]:
        # What the nightly "split the logs per account" job did: read every daily file
        # of this disk and keep the account's lines.
        entries = []
        for path in sorted(self.directory.glob("audit-*.log")):
            with open(path, encoding="utf-8") as log:
                for line in log:
                    data = json.loads(line)
                    if data["account"] == account_slug:
                        entries.append(AuditEntry.from_dict(data))
        return sorted(entries, key=lambda entry: entry.at)


def get_sink() -> AuditSink:
    """The sink named by ``settings.CMS_AUDIT_SINK``, one instance per process."""
    return _sink_for(settings.CMS_AUDIT_SINK)


@functools.cache
def _sink_for(dotted_path: str) -> AuditSink:
    return import_lab_class("CMS_AUDIT_SINK", dotted_path)()


def record(user, account, action: str, **detail) -> AuditEntry:
    """Record that ``user`` did ``action`` (like "screen.created") in ``account``."""
    entry = AuditEntry(
        id=uuid.uuid4().hex,
        at=timezone.now(),
        account=account.slug,
        username=user.get_username(),
        action=action,
        detail=detail,
        node=settings.CMS_NODE_NAME,
    )
    get_sink().record(entry)
    return entry

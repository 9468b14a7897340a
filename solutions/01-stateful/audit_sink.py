"""Where cms keeps its audit trail (settings.CMS_AUDIT_SINK = "audit_sink.AuditSink").

Solution: audit events live in the database, which every node shares; no node's
local disk holds anything the report needs.
"""

from cms.signage.audit import AuditEntry
from cms.signage.audit import AuditSink as BaseAuditSink
from cms.signage.models import Account, AuditEvent


class AuditSink(BaseAuditSink):
    def record(self, entry: AuditEntry) -> None:
        AuditEvent.objects.create(
            id=entry.id,
            at=entry.at,
            account=Account.objects.get(slug=entry.account),
            username=entry.username,
            action=entry.action,
            detail=entry.detail,
            node=entry.node,
        )

    def events_for_account(self, account_slug: str) -> list[AuditEntry]:
        events = AuditEvent.objects.filter(account__slug=account_slug).order_by("at")
        return [
            AuditEntry(
                id=event.id.hex,
                at=event.at,
                account=account_slug,
                username=event.username,
                action=event.action,
                detail=event.detail,
                node=event.node,
            )
            for event in events
        ]

"""Where cms keeps its audit trail (settings.CMS_AUDIT_SINK = "audit_sink.AuditSink").

This is what the app did when it ran on one server: every audit event is a JSON
line in a file on the node's local disk, one file per day, and the per-account
report reads those files back. On one server that is the whole trail. On two
nodes behind a load balancer, each node only has the events it served itself.

The contract (see cms/signage/audit.py):
    record(entry)                 keep one AuditEntry
    events_for_account(slug)      every entry of that account, oldest first,
                                  whichever node recorded it
"""

from django.conf import settings

from cms.signage.audit import FileAuditSink


# TODO(step audit-to-db): keep audit events where every node can read them: the
# database. Subclass cms.signage.audit.AuditSink instead, and implement record()
# and events_for_account() with the cms.signage.models.AuditEvent model.
class AuditSink(FileAuditSink):
    def __init__(self):
        super().__init__(settings.CMS_NODE_DIR / "audit")

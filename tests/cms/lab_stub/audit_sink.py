"""Test stand-in for the workshop lab's ``audit_sink`` module: the single-server behaviour."""

from django.conf import settings

from cms.signage.audit import FileAuditSink


class AuditSink(FileAuditSink):
    def __init__(self):
        super().__init__(settings.CMS_NODE_DIR / "audit")

"""Wrong fix: the audit files moved to settings.CMS_DATA_DIR, "where the app keeps its files"."""

from django.conf import settings

from cms.signage.audit import FileAuditSink


class AuditSink(FileAuditSink):
    def __init__(self):
        super().__init__(settings.CMS_DATA_DIR / "audit")

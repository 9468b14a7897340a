"""The audit entry format, the file sink of the single-server app, and how the sink is chosen."""

import json
from datetime import datetime, timezone

import pytest
from django.core.exceptions import ImproperlyConfigured

from cms.signage.audit import AuditEntry, AuditSink, FileAuditSink, get_sink


def entry(account, at, action="screen.created", **detail):
    return AuditEntry(
        id=f"{at:%Y%m%d%H%M%S}-{account}",
        at=at,
        account=account,
        username="alice",
        action=action,
        detail=detail,
        node="node-1",
    )


def test_entry_round_trips_through_json():
    original = entry("acme", datetime(2024, 5, 2, 0, 20, tzinfo=timezone.utc), screen_id=3)
    data = json.loads(json.dumps(original.to_dict()))
    assert data["at"] == "2024-05-02T00:20:00+00:00"
    assert AuditEntry.from_dict(data) == original


def test_file_sink_writes_one_file_per_day_and_reads_back_one_account(tmp_path):
    sink = FileAuditSink(tmp_path / "audit")
    assert sink.events_for_account("acme") == []  # nothing recorded yet, no folder yet

    late = entry("acme", datetime(2024, 5, 3, 9, 0, tzinfo=timezone.utc), "screen.deleted")
    early = entry("acme", datetime(2024, 5, 2, 23, 59, tzinfo=timezone.utc), "auth.login")
    same_day = entry("acme", datetime(2024, 5, 3, 8, 0, tzinfo=timezone.utc), "screen.updated")
    other = entry("globex", datetime(2024, 5, 2, 12, 0, tzinfo=timezone.utc))
    for recorded in [late, early, other, same_day]:
        sink.record(recorded)

    assert sorted(path.name for path in (tmp_path / "audit").iterdir()) == [
        "audit-2024-05-02.log",
        "audit-2024-05-03.log",
    ]
    lines = (tmp_path / "audit" / "audit-2024-05-03.log").read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["screen.deleted", "screen.updated"]

    assert sink.events_for_account("acme") == [early, same_day, late]
    assert sink.events_for_account("globex") == [other]
    assert sink.events_for_account("initech") == []


def test_base_sink_states_the_contract_only():
    with pytest.raises(NotImplementedError):
        AuditSink().record(entry("acme", datetime.now(timezone.utc)))
    with pytest.raises(NotImplementedError):
        AuditSink().events_for_account("acme")


def test_get_sink_is_one_instance_per_process():
    assert get_sink() is get_sink()


@pytest.mark.parametrize("dotted_path", ["no_such_lab_module.AuditSink", "audit_sink.NoSuchClass"])
def test_missing_sink_class_names_the_setting_and_the_lab_folder(settings, dotted_path):
    settings.CMS_AUDIT_SINK = dotted_path
    with pytest.raises(ImproperlyConfigured) as error:
        get_sink()
    assert "CMS_AUDIT_SINK" in str(error.value)
    assert "01-stateful" in str(error.value)

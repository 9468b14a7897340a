"""Lab 03's last check: the whole worker lost, main process and children, as when its pod is
SIGKILLed. A module of its own, so that its wait (the visibility timeout) runs beside the
other checks instead of after them."""

from workshop.scenarios.celery_renders import SLOW_SECONDS
from workshop.scenarios.celery_task_loss import COMES_BACK_WITHIN, lose_worker
from workshop.scenarios.celery_workers import celery_values

CLUSTER_OPTIONS = {"nodes": 0, "procfile_processes": ()}  # Valkey and the database; the check starts two workers


def test_a_lost_worker_s_task_comes_back_in_time_and_runs_once(cluster, app, events, failure):
    loss = lose_worker(cluster, app, events)
    if loss.back_after is not None and loss.state == "SUCCESS" and loss.runs_before_kill + loss.runs_after_kill == 2:
        return
    values = celery_values(cluster, "CELERY_TASK_ACKS_LATE", "CELERY_BROKER_TRANSPORT_OPTIONS")
    options = values["CELERY_BROKER_TRANSPORT_OPTIONS"] or {}
    timeout = options.get("visibility_timeout", 3600)
    sweep = options.get("unacked_restore_interval", 10) * options.get("unacked_restore_throttle", 10)
    seen = (
        f"two workers ran (two replicas); the whole worker running a {SLOW_SECONDS} s render (main process and "
        f"children) was SIGKILLed {loss.killed_after:.1f} s into it, and the other one kept running. Right after "
        f"the kill the broker held {loss.unacked_after_kill} message(s) delivered but not acknowledged. Your "
        f"settings: CELERY_TASK_ACKS_LATE = "
        f"{values['CELERY_TASK_ACKS_LATE']!r}; CELERY_BROKER_TRANSPORT_OPTIONS = {options!r} (visibility timeout "
        f"{timeout:g} s; overdue messages are looked for when a worker starts, then every {sweep:g} s)."
    )
    if loss.back_after is None:
        if not loss.unacked_after_kill:
            hint = 1  # acknowledged on receipt: nothing left to come back
        elif timeout < COMES_BACK_WITHIN:
            hint = 3  # a short timeout, but the sweeps come too rarely
        else:
            hint = 0
        raise AssertionError(
            failure(
                "worker-lost",
                f"{seen} The render had not run again {loss.waited:.0f} s after the kill; users wait "
                f"{COMES_BACK_WITHIN} s at most here.",
                hint=hint,
            )
        )
    runs = loss.runs_before_kill + loss.runs_after_kill
    raise AssertionError(
        failure(
            "worker-lost",
            f"{seen} The render came back {loss.back_after:.1f} s after the kill and then ran {loss.runs_after_kill} "
            f"time(s) ({runs} runs in all, {loss.runs_before_kill} before the kill), ending "
            f"{loss.state or 'not at all'}: it must run exactly once more. A message handed out again while it still "
            "runs runs twice.",
            hint=2 if loss.runs_after_kill > 1 or loss.runs_before_kill > 1 else 0,
        )
    )

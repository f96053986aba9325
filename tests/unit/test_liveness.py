"""Liveness: the watchdog's allowance per phase, and the worker registry's leases."""

from ftlab.v1 import events_pb2, job_pb2
from services.trainer.watchdog import STEP_FLOOR_SECONDS, Limits, Progress


def event(**payload):
    return events_pb2.RunEvent(**payload)


def phase(p):
    return event(phase_changed=events_pb2.PhaseChanged(phase=p))


def test_phase_allowances_come_from_the_job():
    limits = Limits.from_proto(job_pb2.WatchdogConfig(model_load_timeout_seconds=5, eval_timeout_seconds=7,
                                                       checkpoint_timeout_seconds=9))
    p = Progress(limits, last_event=0.0)
    assert p.limit() == 5
    for ph, expected in ((events_pb2.PHASE_DATA_PREP, 5), (events_pb2.PHASE_EVALUATION, 7),
                         (events_pb2.PHASE_CHECKPOINT_SAVE, 9)):
        p.saw(phase(ph), 0.0)
        assert p.limit() == expected


def test_training_allows_the_larger_of_the_floor_and_20x_the_median_report_interval():
    p = Progress(Limits(), last_event=0.0)
    p.saw(phase(events_pb2.PHASE_TRAINING), 0.0)
    assert p.limit() == STEP_FLOOR_SECONDS
    t = 0.0
    for interval in (50.0, 60.0, 70.0, 1000.0):  # intervals between reports: 60, 70, 1000 -> median 70
        t += interval
        p.saw(event(metrics=events_pb2.TrainingMetrics(step=1)), t)
    assert p.limit() == 20 * 70.0
    assert p.overdue(t + 20 * 70.0 - 1) is None
    assert p.overdue(t + 20 * 70.0 + 1) == 20 * 70.0 + 1


def test_an_explicit_step_limit_wins():
    p = Progress(Limits.from_proto(job_pb2.WatchdogConfig(step_timeout_seconds=3)), last_event=10.0)
    p.saw(phase(events_pb2.PHASE_TRAINING), 10.0)
    assert p.overdue(12.0) is None and p.overdue(13.5) == 3.5


def test_a_worker_expected_after_a_restart_must_register_before_heartbeats_count():
    from ftlab.v1 import trainer_service_pb2
    from services.scheduler.registry import WorkerRegistry

    registry = WorkerRegistry(lease_seconds=60)
    registry.expect("node-a")
    assert registry.heartbeat("node-a", []) is False, "a heartbeat must not stand in for registration"
    assert registry.alive() == []
    registry.register(trainer_service_pb2.WorkerInfo(worker_id="node-a", address="h:1", max_runs=1))
    assert registry.heartbeat("node-a", []) is True
    assert [w.worker_id for w in registry.alive()] == ["node-a"]

"""A Hypothesis state machine over the job domain (real JobManager, real SQLite): create, dispatch,
run events, checkpoints, cancel, pause, resume, worker loss, success and failure in any order.

Invariants: every recorded transition is legal and follows the previous one, nothing moves after a
final state, event sequences are dense, and a paused job resumes from a checkpoint it really saved.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ftlab.config import config_from_dict
from ftlab.v1 import events_pb2, job_pb2, job_service_pb2
from services.common.auth import Caller
from services.common.errors import FailedPrecondition
from services.scheduler import states
from services.scheduler.hub import EventHub
from services.scheduler.jobs import JobManager
from services.scheduler.store import db
from services.scheduler.store.repository import JobStore

U = Caller("u")

CONFIG = config_from_dict({"base_model": "m", "dataset": {"uri": "d.jsonl"}})


class Controller:
    """Stands in for the dispatcher: records stop requests instead of signalling processes."""

    def __init__(self):
        self.stops: list[tuple[str, bool]] = []

    def wake(self):
        pass

    async def stop_run(self, worker, run_id, pause, grace_seconds):
        self.stops.append((run_id, pause))


class JobMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        engine = db.make_engine(f"sqlite:///{self.tmp.name}/jobs.db")
        db.upgrade(engine)
        self.store = JobStore(engine)
        self.loop = asyncio.new_event_loop()
        self.jobs = JobManager(self.store, EventHub(), controller=Controller())
        self.ids: list[str] = []
        self.run_seq: dict[str, int] = {}
        self.saved: dict[str, set[str]] = {}

    def teardown(self):
        self.loop.close()
        self.store.engine.dispose()
        self.tmp.cleanup()

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def state(self, job_id):
        return self.store.get_job(job_id).state

    def in_states(self, *wanted):
        return [i for i in self.ids if self.state(i) in wanted]

    def send(self, job_id, **payload):
        row = self.store.get_job(job_id)
        self.run_seq[row.run_id] = self.run_seq.get(row.run_id, 0) + 1
        event = events_pb2.RunEvent(sequence=self.run_seq[row.run_id], **payload)
        event.time.GetCurrentTime()
        self.run(self.jobs.apply_run_event(job_id, row.run_id, event))

    @rule()
    def create(self):
        job = self.run(self.jobs.create(U, job_service_pb2.CreateJobRequest(config=CONFIG)))
        self.ids.append(job.id)
        self.saved[job.id] = set()

    @rule()
    def dispatch(self):
        self.run(self.jobs.claim("w1"))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def trainer_refuses_start(self, data):
        candidates = self.in_states(states.STARTING)
        if candidates:
            self.run(self.jobs.start_failed(data.draw(st.sampled_from(candidates)), "worker full", retry_after=0))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def run_reports(self, data):
        candidates = self.in_states(states.STARTING, states.RUNNING)
        if candidates:
            self.send(data.draw(st.sampled_from(candidates)),
                      phase_changed=events_pb2.PhaseChanged(phase=events_pb2.PHASE_TRAINING))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), step=st.integers(1, 1000))
    def checkpoint(self, data, step):
        candidates = self.in_states(states.RUNNING, states.PAUSING)
        if candidates:
            job_id = data.draw(st.sampled_from(candidates))
            self.send(job_id, checkpoint_saved=events_pb2.CheckpointSaved(name=f"checkpoint-{step}", step=step))
            self.saved[job_id].add(f"checkpoint-{step}")

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), outcome=st.sampled_from([events_pb2.RUN_OUTCOME_SUCCEEDED, events_pb2.RUN_OUTCOME_FAILED]))
    def run_ends(self, data, outcome):
        candidates = self.in_states(states.RUNNING)
        if candidates:
            job_id = data.draw(st.sampled_from(candidates))
            if outcome == events_pb2.RUN_OUTCOME_FAILED:
                self.send(job_id, error=events_pb2.RunError(type="RuntimeError", message="boom"))
            self.send(job_id, finished=events_pb2.RunFinished(outcome=outcome, exit_code=0))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def pause_completes(self, data):
        candidates = self.in_states(states.PAUSING)
        if candidates:
            job_id = data.draw(st.sampled_from(candidates))
            step = 1000 + len(self.saved[job_id])
            self.send(job_id, checkpoint_saved=events_pb2.CheckpointSaved(name=f"checkpoint-{step}", step=step))
            self.saved[job_id].add(f"checkpoint-{step}")
            self.send(job_id, finished=events_pb2.RunFinished(outcome=events_pb2.RUN_OUTCOME_PAUSED,
                                                              resume_checkpoint=f"checkpoint-{step}"))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def cancel_completes(self, data):
        candidates = self.in_states(states.CANCELLING)
        if candidates:
            self.send(data.draw(st.sampled_from(candidates)),
                      finished=events_pb2.RunFinished(outcome=events_pb2.RUN_OUTCOME_CANCELLED, signal=15))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def worker_lost(self, data):
        candidates = self.in_states(*states.ACTIVE)
        if candidates:
            job_id = data.draw(st.sampled_from(candidates))
            self.run(self.jobs.run_lost(job_id, self.store.get_job(job_id).run_id, "worker w1 lost"))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), command=st.sampled_from(["cancel", "pause", "resume"]))
    def user_command(self, data, command):
        job_id = data.draw(st.sampled_from(self.ids))
        before = self.state(job_id)
        allowed = {
            "cancel": not states.is_final(before),
            "pause": before in (states.RUNNING, states.STARTING),
            "resume": before == states.PAUSED,
        }[command]
        try:
            if command == "cancel":
                self.run(self.jobs.cancel(U, job_id, None))
            elif command == "pause":
                self.run(self.jobs.pause(U, job_id))
            else:
                self.run(self.jobs.resume(U, job_service_pb2.ResumeJobRequest(name=job_id)))
        except FailedPrecondition:
            assert not allowed, f"{command} refused in {before}"
        else:
            assert allowed, f"{command} accepted in {before}"

    @invariant()
    def history_is_legal(self):
        for job_id in self.ids:
            events = self.store.events_after(job_id, 0, 100000)
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
            current = ""
            for e in events:
                if e.HasField("state_changed"):
                    sc = e.state_changed
                    src, dst = job_pb2.JobState.Name(sc.from_state), job_pb2.JobState.Name(sc.to_state)
                    if current:
                        assert src == current, (src, current)
                        assert states.can_move(src, dst), f"illegal {src} -> {dst}"
                    current = dst
                elif current and states.is_final(current):
                    raise AssertionError(f"event after final state {current}: {e}")
            assert current == self.state(job_id)

    @invariant()
    def paused_jobs_resume_from_a_saved_checkpoint(self):
        for job_id in self.in_states(states.PAUSED):
            checkpoint = self.store.get_job(job_id).resume_checkpoint
            assert checkpoint == "" or checkpoint in self.saved[job_id], checkpoint
            if checkpoint:
                assert checkpoint in {c.name for c in self.store.checkpoints(job_id)}


TestJobStateMachine = JobMachine.TestCase
TestJobStateMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])

"""gRPC servicers of the scheduler: thin. Decode, call the domain, encode."""

from __future__ import annotations

from ftlab.v1 import job_service_pb2, job_service_pb2_grpc, trainer_service_pb2, trainer_service_pb2_grpc
from services.common.auth import caller
from services.scheduler import templates
from services.scheduler.jobs import JobManager
from services.scheduler.registry import WorkerRegistry

pb = job_service_pb2


class JobService(job_service_pb2_grpc.JobServiceServicer):
    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs

    async def CreateJob(self, request, context):
        return pb.CreateJobResponse(job=await self.jobs.create(caller(context), request))

    async def GetJob(self, request, context):
        return pb.GetJobResponse(job=await self.jobs.get(caller(context), request.name))

    async def ListJobs(self, request, context):
        jobs, token = await self.jobs.list(caller(context), list(request.states), request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=jobs, next_page_token=token)

    async def CancelJob(self, request, context):
        grace = request.grace_seconds if request.HasField("grace_seconds") else None
        return pb.CancelJobResponse(job=await self.jobs.cancel(caller(context), request.name, grace))

    async def PauseJob(self, request, context):
        return pb.PauseJobResponse(job=await self.jobs.pause(caller(context), request.name))

    async def ResumeJob(self, request, context):
        return pb.ResumeJobResponse(job=await self.jobs.resume(caller(context), request))

    async def RetryJob(self, request, context):
        return pb.RetryJobResponse(job=await self.jobs.retry(caller(context), request))

    async def WatchJob(self, request, context):
        async for event, state in self.jobs.watch(caller(context), request.name, request.after_sequence, request.follow):
            yield pb.WatchJobResponse(event=event, state=state)

    async def ListJobEvents(self, request, context):
        events, token = await self.jobs.events(
            caller(context), request.name, request.after_sequence, request.page_size, request.page_token)
        return pb.ListJobEventsResponse(events=events, next_page_token=token)

    async def ListCheckpoints(self, request, context):
        return pb.ListCheckpointsResponse(checkpoints=await self.jobs.checkpoints(caller(context), request.name))

    async def GetQueue(self, request, context):
        free = self.jobs.controller.free_slots() if self.jobs.controller is not None else 0
        return await self.jobs.queue(caller(context), free)

    async def SetJobPriority(self, request, context):
        return pb.SetJobPriorityResponse(job=await self.jobs.set_priority(caller(context), request.name, request.priority))

    async def ListTemplates(self, request, context):
        return pb.ListTemplatesResponse(templates=templates.list_templates())


class WorkerRegistryService(trainer_service_pb2_grpc.WorkerRegistryServiceServicer):
    def __init__(self, registry: WorkerRegistry, on_register=None) -> None:
        self.registry = registry
        self.on_register = on_register

    async def RegisterWorker(self, request, context):
        worker = self.registry.register(request.worker)
        if self.on_register is not None:
            await self.on_register(worker)
        return trainer_service_pb2.RegisterWorkerResponse(
            heartbeat_interval_seconds=self.registry.heartbeat_interval, lease_seconds=self.registry.lease_seconds)

    async def Heartbeat(self, request, context):
        return trainer_service_pb2.HeartbeatResponse(known=self.registry.heartbeat(request.worker_id, list(request.running_runs)))

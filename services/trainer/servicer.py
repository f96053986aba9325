"""gRPC servicer of the trainer: thin. Decode, call the supervisor, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc

from ftlab.v1 import trainer_service_pb2 as pb
from ftlab.v1 import trainer_service_pb2_grpc
from services.common.errors import FieldViolation, InvalidArgument
from services.trainer import admission
from services.trainer.generation import GenerationPool
from services.trainer.supervisor import RunSupervisor


class TrainerService(trainer_service_pb2_grpc.TrainerServiceServicer):
    def __init__(self, supervisor: RunSupervisor, generation: GenerationPool,
                 describe: Callable[[], pb.WorkerInfo]) -> None:
        self.supervisor = supervisor
        self.generation = generation
        self.describe = describe

    async def GetWorkerInfo(self, request: pb.GetWorkerInfoRequest,
                            context: grpc.aio.ServicerContext) -> pb.GetWorkerInfoResponse:
        return pb.GetWorkerInfoResponse(worker=self.describe())

    async def StartRun(self, request: pb.StartRunRequest, context: grpc.aio.ServicerContext) -> pb.StartRunResponse:
        evaluation = admission.Evaluation(request.evaluation, request.evaluated_job_id, request.evaluated_checkpoint) \
            if request.HasField("evaluation") else None
        run = await self.supervisor.start(request.run_id, request.job_id, request.config, request.resume_checkpoint,
                                          request.watchdog, weights_only=request.resume_weights_only,
                                          evaluation=evaluation)
        return pb.StartRunResponse(run_id=run.run_id, pid=run.pid)

    async def StopRun(self, request: pb.StopRunRequest, context: grpc.aio.ServicerContext) -> pb.StopRunResponse:
        modes = {pb.STOP_MODE_PAUSE: "pause", pb.STOP_MODE_CANCEL: "cancel"}
        if request.mode not in modes:
            raise InvalidArgument("mode is required", violations=[FieldViolation("mode", "PAUSE or CANCEL")])
        grace = request.grace_seconds if request.HasField("grace_seconds") else None
        return pb.StopRunResponse(was_running=await self.supervisor.stop(request.run_id, modes[request.mode], grace))

    async def StreamRun(self, request: pb.StreamRunRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamRunResponse]:
        async for event in self.supervisor.events(request.run_id, request.after_sequence, request.follow):
            yield pb.StreamRunResponse(event=event)

    async def Generate(self, request: pb.GenerateRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GenerateResponse]:
        async for response in self.generation.generate(request):
            yield response

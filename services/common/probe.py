"""gRPC health probe for containers: exit 0 when the server (or one of its services) is SERVING.

    python -m services.common.probe [ADDRESS] [SERVICE]     (default 127.0.0.1:50051, the whole server)
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    address = argv[0] if argv else "127.0.0.1:50051"
    service = argv[1] if len(argv) > 1 else ""
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
    except grpc.RpcError as err:
        print(f"{address}: {err.code().name}", file=sys.stderr)
        return 1
    print(f"{address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

// FineTune Lab's TypeScript SDK: the generated messages and services (gen/ftlab/v1, from protos/ by
// protoc-gen-es) and typed clients over Connect's gRPC transport for Node.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AnalyzerService } from "./gen/ftlab/v1/analyzer_pb.js";
import { ArtifactService } from "./gen/ftlab/v1/artifact_service_pb.js";
import { JobService } from "./gen/ftlab/v1/job_service_pb.js";

export * from "./gen/ftlab/v1/job_service_pb.js";
export * from "./gen/ftlab/v1/job_pb.js";
export * from "./gen/ftlab/v1/config_pb.js";
export * from "./gen/ftlab/v1/events_pb.js";
export * from "./gen/ftlab/v1/analyzer_pb.js";
export * from "./gen/ftlab/v1/artifact_service_pb.js";
export * from "./gen/ftlab/v1/dataset_pb.js";

/**
 * Clients for the public services of a FineTune Lab server.
 * @param {{address?: string, token?: string, user?: string, tls?: boolean}} [options]
 *   address "host:port" (default FTLAB_ADDRESS or localhost:50051); token: a bearer token
 *   (default FTLAB_TOKEN); user: the caller's name on a server without auth (default FTLAB_USER).
 */
export function createFtlabClients(options = {}) {
  const env = typeof process !== "undefined" ? process.env : {};
  const address = options.address ?? env.FTLAB_ADDRESS ?? "localhost:50051";
  const token = options.token ?? env.FTLAB_TOKEN;
  const user = options.user ?? env.FTLAB_USER ?? "default";
  const transport = createGrpcTransport({
    baseUrl: `${options.tls ? "https" : "http"}://${address}`,
    interceptors: [
      (next) => (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        else req.header.set("x-ftlab-user", user);
        return next(req);
      },
    ],
  });
  return {
    jobs: createClient(JobService, transport),
    artifacts: createClient(ArtifactService, transport),
    analyzer: createClient(AnalyzerService, transport),
  };
}

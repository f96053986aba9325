// FineTune Lab's TypeScript SDK: the generated messages and services (gen/ftlab/v1, from protos/ by
// protoc-gen-es) and typed clients over Connect's gRPC transport for Node.
import { homedir } from "node:os";
import path from "node:path";
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

const LOCAL_PATH_FIELDS = [["baseModel"], ["dataset", "uri"], ["dataset", "evalUri"], ["samples", "promptsUri"]];

/**
 * Paths written relative to where the caller stands ("./tiny", "../data/chat.jsonl", "~/models/x")
 * made absolute from `base` (the current folder by default), in place, as the Python SDK and the CLI
 * do: the server cannot know where the caller stood. Hub ids and plain dataset names ("chat.jsonl",
 * taken from the server's datasets folder) are left as they are.
 * @param {object | undefined} config a TrainingConfig (or its init object)
 * @param {string} [base]
 */
export function resolveLocalPaths(config, base = process.cwd()) {
  for (const [first, second] of LOCAL_PATH_FIELDS) {
    const holder = second ? config?.[first] : config;
    const key = second ?? first;
    const value = holder?.[key];
    if (typeof value !== "string") continue;
    if (/^(\.\.?\/|~)/.test(value) || value === "." || value === "..") {
      const expanded = value.startsWith("~") ? path.join(homedir(), value.slice(1)) : value;
      holder[key] = path.resolve(base, expanded);
    }
  }
  return config;
}

/**
 * Clients for the public services of a FineTune Lab server. CreateJob's config and RetryJob's
 * changes have their relative paths made absolute from the current folder (resolveLocalPaths).
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
        if (!req.stream && req.method.name === "CreateJob") resolveLocalPaths(req.message.config);
        if (!req.stream && req.method.name === "RetryJob") resolveLocalPaths(req.message.configChanges);
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

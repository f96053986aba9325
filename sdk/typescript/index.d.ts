import type { Client } from "@connectrpc/connect";
import type { AnalyzerService } from "./gen/ftlab/v1/analyzer_pb.js";
import type { ArtifactService } from "./gen/ftlab/v1/artifact_service_pb.js";
import type { JobService } from "./gen/ftlab/v1/job_service_pb.js";
import type { TrainingConfig } from "./gen/ftlab/v1/config_pb.js";

export * from "./gen/ftlab/v1/job_service_pb.js";
export * from "./gen/ftlab/v1/job_pb.js";
export * from "./gen/ftlab/v1/config_pb.js";
export * from "./gen/ftlab/v1/events_pb.js";
export * from "./gen/ftlab/v1/analyzer_pb.js";
export * from "./gen/ftlab/v1/artifact_service_pb.js";
export * from "./gen/ftlab/v1/dataset_pb.js";

export interface FtlabOptions {
  /** "host:port"; default FTLAB_ADDRESS or localhost:50051. */
  address?: string;
  /** Bearer token; default FTLAB_TOKEN. */
  token?: string;
  /** The caller's name on a server without auth; default FTLAB_USER. */
  user?: string;
  /** Use TLS. */
  tls?: boolean;
}

export interface FtlabClients {
  jobs: Client<typeof JobService>;
  artifacts: Client<typeof ArtifactService>;
  analyzer: Client<typeof AnalyzerService>;
}

export declare function createFtlabClients(options?: FtlabOptions): FtlabClients;

/** Relative paths of base_model and the dataset files made absolute from `base` (default: the
 * current folder), in place; hub ids and plain dataset names are left as they are. */
export declare function resolveLocalPaths<T extends Partial<TrainingConfig> | undefined>(config: T, base?: string): T;

/** One job, as compareJobs compares it. */
export interface ComparedRun {
  name: string;
  displayName: string;
  /** "succeeded", "failed", ... */
  state: string;
  stateReason: string;
  /** Its parent, the parent's parent, ... (retries and continuations). */
  lineage: string[];
  steps: number;
  maxSteps: number;
  trainLoss: number | null;
  bestTrainLoss: number | null;
  evalLoss: number | null;
  bestEvalLoss: number | null;
  bestEvalStep: number | null;
  /** The median of the logged rates. */
  tokensPerSecond: number | null;
  losses: number[];
  /** Prompt -> the latest (the final model's) answer. */
  answers: Record<string, string>;
  /** "task metric" -> the fine-tuned model's score in the job's latest evaluation. */
  scores: Record<string, number>;
}

export interface Comparison {
  runs: ComparedRun[];
  /** Config field (dotted, proto names) -> its value in each job, where they differ from the first's. */
  changes: Record<string, unknown[]>;
  prompts: string[];
}

/** Runs side by side over the public API, as the Python SDK's `ftlab.compare`. */
export declare function compareJobs(clients: Pick<FtlabClients, "jobs">, names: string[]): Promise<Comparison>;

// FineTune Lab's TypeScript SDK: the generated messages and services (gen/ftlab/v1, from protos/ by
// protoc-gen-es) and typed clients over Connect's gRPC transport for Node.
import { homedir } from "node:os";
import path from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AnalyzerService } from "./gen/ftlab/v1/analyzer_pb.js";
import { TrainingConfigSchema } from "./gen/ftlab/v1/config_pb.js";
import { JobKind, JobState } from "./gen/ftlab/v1/job_pb.js";
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

/**
 * Runs side by side, over the public API, as the Python SDK's `ftlab.compare` and `ftlab compare`:
 * the config fields that differ from the first job's, each run's losses (last and best train and eval
 * loss, the curve), steps, median tokens/s, its latest answers to the sample prompts, and its lineage.
 * @param {{jobs: import("@connectrpc/connect").Client<typeof JobService>}} clients from createFtlabClients
 * @param {string[]} names "jobs/{id}" or ids; the first is the one the others are compared against
 */
export async function compareJobs(clients, names) {
  const jobs = await Promise.all(names.map(async (name) => (await clients.jobs.getJob({ name })).job));
  const configs = jobs.map((job) => flatten(toJson(TrainingConfigSchema, job.config, { useProtoFieldName: true })));
  const fields = [...new Set(configs.flatMap((c) => Object.keys(c)))];
  const changes = {};
  for (const field of fields) {
    const values = configs.map((c) => c[field] ?? null);
    if (values.some((v) => JSON.stringify(v) !== JSON.stringify(values[0]))) changes[field] = values;
  }
  const evaluations = [];
  let pageToken = "";
  do {
    const page = await clients.jobs.listJobs({ pageSize: 100, pageToken });
    evaluations.push(...page.jobs.filter((j) => j.kind === JobKind.EVALUATION && j.state === JobState.SUCCEEDED));
    pageToken = page.nextPageToken;
  } while (pageToken);
  const runs = await Promise.all(jobs.map((job) => summarize(clients, job, evaluations)));
  const prompts = [...new Set(runs.flatMap((r) => Object.keys(r.answers)))];
  return { runs, changes, prompts };
}

function flatten(node, prefix = "", out = {}) {
  for (const [key, value] of Object.entries(node ?? {})) {
    if (value && typeof value === "object" && !Array.isArray(value) && key !== "columns") {
      flatten(value, `${prefix}${key}.`, out);
    } else {
      out[prefix + key] = value;
    }
  }
  return out;
}

async function summarize(clients, job, evaluations) {
  const events = [];
  let pageToken = "";
  do {
    const page = await clients.jobs.listJobEvents({ name: job.name, pageSize: 1000, pageToken });
    events.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken);
  const of = (kind) => events.filter((e) => e.payload.case === kind).map((e) => e.payload.value);
  const losses = of("metrics").filter((m) => m.loss !== undefined).map((m) => m.loss);
  const evals = of("eval").map((e) => ({ step: Number(e.step), loss: e.evalLoss }));
  const rates = of("metrics").map((m) => m.tokensPerSecond).filter((r) => r > 0).sort((a, b) => a - b);
  const best = evals.reduce((b, e) => (b === null || e.loss < b.loss ? e : b), null);
  const samples = of("samples");
  const lineage = [];
  for (let parent = job.parent; parent && lineage.length < 20;) {
    lineage.push(parent);
    parent = (await clients.jobs.getJob({ name: parent })).job.parent;
  }
  const median = rates.length ? (rates[(rates.length - 1) >> 1] + rates[rates.length >> 1]) / 2 : null;
  return {
    name: job.name, displayName: job.displayName, state: JobState[job.state].toLowerCase(), stateReason: job.stateReason,
    lineage, steps: Number(job.progress?.step ?? 0), maxSteps: Number(job.progress?.maxSteps ?? 0),
    trainLoss: losses.at(-1) ?? null, bestTrainLoss: losses.length ? Math.min(...losses) : null,
    evalLoss: evals.at(-1)?.loss ?? null, bestEvalLoss: best?.loss ?? null, bestEvalStep: best?.step ?? null,
    tokensPerSecond: median, losses,
    answers: Object.fromEntries((samples.at(-1)?.answers ?? []).map((a) => [a.prompt, a.completion])),
    scores: latestScores(evaluations.filter((e) => e.parent === job.name)),
  };
}

function latestScores(evaluations) {
  const latest = evaluations.reduce((l, e) => (!l || Number(e.createTime.seconds) > Number(l.createTime.seconds)
    ? e : l), null);
  return Object.fromEntries((latest?.evaluationResults?.scores ?? []).filter((s) => s.model === "fine-tuned")
    .map((s) => [`${s.task} ${s.metric}`, s.value]));
}

// Relative paths are taken from where the caller stands, as in the Python SDK and the CLI.
// Run by tests/e2e/test_typescript_sdk.py with FTLAB_ADDRESS, FTLAB_TEST_MODEL and FTLAB_TEST_DATASET set.
import assert from "node:assert/strict";
import { homedir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { createFtlabClients, resolveLocalPaths } from "../index.js";

test("relative paths are made absolute from the caller's folder", () => {
  const config = { baseModel: "./tiny", dataset: { uri: "chat.jsonl", evalUri: "../data/eval.jsonl" },
                   samples: { promptsUri: "./prompts.txt" } };
  resolveLocalPaths(config, "/srv/jobs");
  assert.deepEqual(config, { baseModel: "/srv/jobs/tiny",
                             dataset: { uri: "chat.jsonl", evalUri: "/srv/data/eval.jsonl" },
                             samples: { promptsUri: "/srv/jobs/prompts.txt" } });
  assert.equal(resolveLocalPaths({ baseModel: "~/models/x" }).baseModel, path.join(homedir(), "models/x"));
  assert.equal(resolveLocalPaths({ baseModel: "Qwen/Qwen2.5-0.5B" }).baseModel, "Qwen/Qwen2.5-0.5B");
  assert.equal(resolveLocalPaths(undefined), undefined);
});

test("a job with a relative base_model passes validation with the path made absolute", { timeout: 120_000 }, async () => {
  const { jobs } = createFtlabClients({ user: "node-paths" });
  let relative = path.relative(process.cwd(), process.env.FTLAB_TEST_MODEL);
  if (!relative.startsWith("..")) relative = `./${relative}`;
  const { job } = await jobs.createJob({
    config: { baseModel: relative, dataset: { uri: process.env.FTLAB_TEST_DATASET }, maxSteps: 2 },
    validateOnly: true,
    requestId: `node-paths-${Date.now()}`,
  });
  assert.equal(job.config.baseModel, process.env.FTLAB_TEST_MODEL);
});

// A Node client submits a job to a real FineTune Lab server and watches it to the end.
// Run by tests/e2e/test_typescript_sdk.py with FTLAB_ADDRESS, FTLAB_TEST_MODEL and FTLAB_TEST_DATASET set.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CheckpointSelector, EvalStrategy, JobKind, JobState, compareJobs, createFtlabClients } from "../index.js";

test("submit a job and watch it to the end", { timeout: 300_000 }, async () => {
  const { jobs } = createFtlabClients({ user: "node-sdk" });
  const { job } = await jobs.createJob({
    config: {
      baseModel: process.env.FTLAB_TEST_MODEL,
      dataset: { uri: process.env.FTLAB_TEST_DATASET, evalSplit: 0.25 },
      maxSteps: 8,
      saveSteps: 4,
      maxSeqLength: 64,
      evalStrategy: EvalStrategy.STEPS,
      evalSteps: 4,
      samples: { prompts: ["What is 2 plus 3?"], maxNewTokens: 4 },
    },
    displayName: "from node",
    requestId: `node-${Date.now()}`,
  });
  assert.ok(job.name.startsWith("jobs/"));
  assert.equal(job.owner, "node-sdk");
  assert.equal(job.config.maxSteps, 8n); // resolved: template + overrides (int64: a bigint)

  const steps = [];
  const answered = []; // the sample prompt's answers: at each evaluation, then the final model's
  let state = job.state;
  for await (const update of jobs.watchJob({ name: job.name, follow: true }, { timeoutMs: 280_000 })) {
    state = update.state;
    if (update.event?.payload.case === "metrics") steps.push(update.event.payload.value.step);
    if (update.event?.payload.case === "samples") {
      const samples = update.event.payload.value;
      assert.equal(samples.answers[0].prompt, "What is 2 plus 3?");
      answered.push(samples.final ? "final" : samples.step);
    }
  }
  assert.equal(state, JobState.SUCCEEDED, `ended ${JobState[state]}`);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8].map(BigInt));
  assert.deepEqual(answered, [4n, 8n, "final"]);

  const { checkpoints } = await jobs.listCheckpoints({ name: job.name });
  assert.deepEqual(checkpoints.map((c) => c.name), ["checkpoint-4", "checkpoint-8"]);

  // the trained adapter answers, streamed
  let text = "";
  let done;
  for await (const piece of jobs.generateText({ name: job.name, prompt: "What is 2 plus 3?", maxNewTokens: 6 },
                                              { timeoutMs: 120_000 })) {
    text += piece.text;
    if (piece.done) done = { ...piece.done, weights: piece.weights };
  }
  assert.ok(done && done.tokens > 0 && done.weights === "adapter", JSON.stringify(done));
  assert.equal(typeof text, "string");

  // an evaluation of the trained adapter on a task of rows, with its base model beside it
  const rows = JSON.stringify({ prompt: "What is 2 plus 3?", answer: "5" });
  const { job: evaluation } = await jobs.evaluateJob({
    evaluation: { job: job.name, tasks: [{ name: "sums", rows }], limit: 1, builtin: false },
    requestId: `node-eval-${Date.now()}`,
  });
  assert.equal(evaluation.kind, JobKind.EVALUATION);
  for await (const update of jobs.watchJob({ name: evaluation.name, follow: true }, { timeoutMs: 280_000 })) {
    state = update.state;
  }
  assert.equal(state, JobState.SUCCEEDED, `the evaluation ended ${JobState[state]}`);
  const { job: evaluated } = await jobs.getJob({ name: evaluation.name });
  assert.deepEqual(evaluated.evaluationResults.scores.map((s) => [s.task, s.metric, s.model]),
                   [["sums", "exact_match", "fine-tuned"], ["sums", "exact_match", "base"]]);

  // a continuation with another learning rate, compared with the job it continues
  const { job: next } = await jobs.retryJob({ name: job.name, configChanges: { learningRate: 1e-3, maxSteps: 12n },
                                              checkpoint: CheckpointSelector.LATEST });
  for await (const update of jobs.watchJob({ name: next.name, follow: true }, { timeoutMs: 280_000 })) {
    state = update.state;
  }
  assert.equal(state, JobState.SUCCEEDED, `the continuation ended ${JobState[state]}`);
  const { runs, changes, prompts } = await compareJobs({ jobs }, [job.name, next.name]);
  assert.deepEqual(changes.learning_rate, [job.config.learningRate, 1e-3]);
  assert.deepEqual(runs.map((r) => [r.steps, r.lineage]), [[8, []], [12, [job.name]]]);
  assert.equal(runs[0].losses.length, 8);
  assert.ok(runs.every((r) => r.state === "succeeded" && r.tokensPerSecond > 0 && r.bestEvalLoss !== null));
  assert.deepEqual(prompts, ["What is 2 plus 3?"]);

  await assert.rejects(jobs.getJob({ name: "jobs/0000000000000000" }), (err) => err.code === 5); // NOT_FOUND
});

// OpenAI's documented fine-tuning flow with the official `openai` package for Node, unchanged but for
// baseURL and apiKey: upload, create, poll, events, checkpoints, chat completions with the fine-tuned
// model, and the SDK's typed errors. Run by tests/e2e/test_openai_gateway.py with
// FTLAB_OPENAI_URL, FTLAB_TOKEN, FTLAB_OTHER_TOKEN, FTLAB_MODEL and FTLAB_TRAINING_FILE set.
import assert from "node:assert/strict";
import fs from "node:fs";
import OpenAI from "openai";

const env = process.env;
const client = new OpenAI({ baseURL: env.FTLAB_OPENAI_URL, apiKey: env.FTLAB_TOKEN });
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

const file = await client.files.create({ file: fs.createReadStream(env.FTLAB_TRAINING_FILE), purpose: "fine-tune" });
assert.match(file.id, /^file-/);
assert.equal(file.bytes, fs.statSync(env.FTLAB_TRAINING_FILE).size);

let job = await client.fineTuning.jobs.create({
  model: env.FTLAB_MODEL,
  training_file: file.id,
  suffix: "node",
  method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 1, batch_size: 4 } } },
});
assert.equal(job.status, "queued");
const deadline = Date.now() + 300_000;
while (!["succeeded", "failed", "cancelled"].includes(job.status)) {
  assert.ok(Date.now() < deadline, `${job.id} still ${job.status}`);
  await sleep(500);
  job = await client.fineTuning.jobs.retrieve(job.id);
}
assert.equal(job.status, "succeeded", JSON.stringify(job.error));
assert.equal(job.method.supervised.hyperparameters.n_epochs, 1);

const events = [];
for await (const event of client.fineTuning.jobs.listEvents(job.id, { limit: 5 })) events.push(event); // pages of 5
assert.ok(events.some((e) => e.type === "metrics" && e.data.train_loss > 0));
assert.equal(new Set(events.map((e) => e.id)).size, events.length);

const checkpoints = (await client.fineTuning.jobs.checkpoints.list(job.id)).data;
assert.ok(checkpoints.length > 0 && checkpoints[0].fine_tuned_model_checkpoint.startsWith(job.fine_tuned_model));

const reply = await client.chat.completions.create({
  model: job.fine_tuned_model, max_completion_tokens: 6, messages: [{ role: "user", content: "What is 2 plus 3?" }],
});
assert.equal(reply.choices[0].message.role, "assistant");
let streamed = 0;
const stream = await client.chat.completions.create({
  model: job.fine_tuned_model, max_completion_tokens: 6, stream: true, messages: [{ role: "user", content: "Hi" }],
});
for await (const chunk of stream) streamed += chunk.choices.length;
assert.ok(streamed > 1);

await assert.rejects(client.fineTuning.jobs.create({ model: env.FTLAB_MODEL, training_file: "file-nope" }),
  (err) => err instanceof OpenAI.NotFoundError || (err instanceof OpenAI.BadRequestError && err.param === "training_file"));
const bob = new OpenAI({ baseURL: env.FTLAB_OPENAI_URL, apiKey: env.FTLAB_OTHER_TOKEN });
await assert.rejects(bob.fineTuning.jobs.retrieve(job.id), OpenAI.NotFoundError);
const stranger = new OpenAI({ baseURL: env.FTLAB_OPENAI_URL, apiKey: "not-a-key" });
await assert.rejects(stranger.files.list(), OpenAI.AuthenticationError);

console.log(JSON.stringify({ job: job.id, model: job.fine_tuned_model, events: events.length,
  checkpoints: checkpoints.length, reply: reply.choices[0].message.content }));

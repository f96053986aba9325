"""OpenAI's fine-tuning flow, as OpenAI documents it, run against FineTune Lab: the official `openai`
package reads OPENAI_BASE_URL and OPENAI_API_KEY, so the code is the code you have today.

    export OPENAI_BASE_URL=http://localhost:8080/v1 OPENAI_API_KEY=...
    python examples/openai_finetune.py MODEL TRAINING_FILE [VALIDATION_FILE]
"""

import sys
import time

from openai import OpenAI

model, training_path = sys.argv[1], sys.argv[2]
client = OpenAI()

training = client.files.create(file=open(training_path, "rb"), purpose="fine-tune")
validation = client.files.create(file=open(sys.argv[3], "rb"), purpose="fine-tune") if len(sys.argv) > 3 else None
job = client.fine_tuning.jobs.create(
    model=model,
    training_file=training.id,
    validation_file=validation.id if validation else None,
    suffix="quickstart",
    method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}}},
)
print("created", job.id, job.status)

seen: set[str] = set()
while job.status not in ("succeeded", "failed", "cancelled"):
    time.sleep(2)
    job = client.fine_tuning.jobs.retrieve(job.id)
    for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=100).data):
        if event.id not in seen:
            seen.add(event.id)
            print(f"  [{event.level}] {event.message}")
print("finished", job.id, job.status, job.fine_tuned_model or job.error.message)
if job.status != "succeeded":
    sys.exit(1)

for checkpoint in client.fine_tuning.jobs.checkpoints.list(job.id):
    print("checkpoint", checkpoint.fine_tuned_model_checkpoint, f"loss {checkpoint.metrics.train_loss:.3f}")
reply = client.chat.completions.create(model=job.fine_tuned_model, max_completion_tokens=16,
                                       messages=[{"role": "user", "content": "What is 2 plus 3?"}])
print("reply", repr(reply.choices[0].message.content))

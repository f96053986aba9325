"""The playground through the real services: a job's trained adapter answers on the trainer, streamed;
the text is what plain transformers + PEFT give for the same weights and seed; the process stays
loaded for the next request, stops an answer whose caller went away, gives its slot to a training
run, and ends when idle."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from ftlab import Client
from ftlab.errors import FtlabError
from ftlab.v1 import job_pb2
from tests.helpers import start_server, wait_for, write_chat_dataset

pytestmark = pytest.mark.slow
PROMPT = "What is 2 plus 3?"


def generation_children(job_id: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
            state = open(f"/proc/{entry}/stat").read().split()[2]
        except OSError:
            continue
        if "services.trainer.generation_child" in cmdline and f"/jobs/{job_id}/" in cmdline and state != "Z":
            out.append(int(entry))
    return out


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    home = tmp_path_factory.mktemp("playground")
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    server = start_server(home, ["--generation-idle-seconds", "3", "--cpu-threads", "1"], name="playground")
    yield server
    assert server.stop() == 0, server.log()


def plain_generate(base, adapter, max_new_tokens: int, temperature: float, seed: int) -> str:
    """The same answer with plain transformers + PEFT, as a user would write it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    torch.manual_seed(seed)
    sampled = temperature > 0
    out = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                         max_new_tokens=max_new_tokens, do_sample=sampled, temperature=temperature if sampled else None,
                         top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                         else tokenizer.eos_token_id)
    return tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_a_trained_adapter_answers_streamed_as_plain_transformers_would(playground, tiny_model):
    with Client(playground.address, user="gen") as client:
        job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl", "eval_split": 0.1},
                                 "max_steps": 6, "save_steps": 3, "max_seq_length": 64, "eval_strategy": "steps",
                                 "eval_steps": 3, "learning_rate": 5e-3})
        assert client.wait(job.name, timeout=240).state == job_pb2.JOB_STATE_SUCCEEDED
        adapter = playground.home / "artifacts" / "jobs" / job.id / "adapter"

        for temperature, seed in ((0.0, 42), (1.0, 7)):  # greedy, then sampled with a seed
            pieces = list(client.generate(job.name, PROMPT, max_new_tokens=24, temperature=temperature, seed=seed))
            done = pieces[-1]
            assert done.HasField("done") and done.weights == "adapter"
            assert done.done.tokens > 0 and done.done.finish_reason in ("eos", "length")
            text = "".join(p.text for p in pieces)
            assert text == plain_generate(str(tiny_model), str(adapter), 24, temperature, seed)
            if temperature > 0:
                assert len(pieces) > 2 and text.strip(), "streamed in pieces, as decoded"
        first_load = None
        # the same weights stay loaded: the next answer needs no load
        again = list(client.generate(job.name, PROMPT, max_new_tokens=4))[-1].done
        assert again.load_seconds == 0 and again.tokens > 0
        (pid,) = generation_children(job.id)

        # a caller that goes away stops its answer; the process answers the next one
        stream = client.generate(job.name, PROMPT, max_new_tokens=4000, temperature=1.0, seed=3)
        next(stream)
        stream.close()
        after = list(client.generate(job.name, PROMPT, max_new_tokens=5, temperature=1.0, seed=1))[-1].done
        assert after.tokens > 0 and generation_children(job.id) == [pid]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{playground.metrics_port}/metrics").read().decode()
        assert re.search(r'ftlab_generation_requests_total\{outcome="cancelled"\} [1-9]', metrics), metrics[-2000:]
        assert re.search(r'ftlab_generation_requests_total\{outcome="ok"\} [4-9]', metrics)

        # a checkpoint answers too, from its own process
        at_checkpoint = list(client.generate(job.name, PROMPT, checkpoint="checkpoint-3", max_new_tokens=4))
        assert at_checkpoint[-1].weights == "checkpoint-3" and at_checkpoint[-1].done.load_seconds > 0
        first_load = at_checkpoint[-1].done.load_seconds

        # idle processes end by themselves
        wait_for(lambda: not generation_children(job.id), timeout=60, what="the idle generation processes to end")
        assert first_load is not None


def test_generation_gives_way_to_training_and_refuses_what_it_cannot_do(playground, tiny_model, tmp_path):
    with Client(playground.address, user="gen2") as client:
        job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 3,
                                 "save_steps": 3, "max_seq_length": 64})
        assert client.wait(job.name, timeout=240).state == job_pb2.JOB_STATE_SUCCEEDED
        assert client.generate_text(job.name, PROMPT, max_new_tokens=3) is not None
        assert generation_children(job.id)
        # the one slot is the loaded process's: a training run takes it back at once
        busy = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"},
                                  "max_steps": 100000, "save_steps": 0, "max_seq_length": 64})
        wait_for(lambda: client.get_job(busy.name).state == job_pb2.JOB_STATE_RUNNING, timeout=120,
                 what="the training job to start")
        assert not generation_children(job.id)
        with pytest.raises(FtlabError) as err:  # while it trains, there is no slot to answer in
            client.generate_text(job.name, PROMPT)
        assert err.value.code.name == "RESOURCE_EXHAUSTED"
        client.cancel_job(busy.name)
        client.wait(busy.name, timeout=120)

        for kwargs, field in (({"prompt": ""}, "messages"), ({"prompt": PROMPT, "max_new_tokens": 0}, "max_new_tokens"),
                              ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role")):
            with pytest.raises(FtlabError) as err:
                client.generate_text(job.name, **kwargs)
            assert err.value.code.name == "INVALID_ARGUMENT" and field in dict(err.value.field_violations), kwargs
        with pytest.raises(FtlabError) as err:
            client.generate_text(job.name, PROMPT, checkpoint="checkpoint-99")
        assert err.value.code.name == "NOT_FOUND"
    with Client(playground.address, user="someone-else") as other, pytest.raises(FtlabError) as err:
        other.generate_text(job.name, PROMPT)
    assert err.value.code.name == "NOT_FOUND"  # another user's job does not exist for them

    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": PROMPT}]))
    env = {**os.environ, "FTLAB_USER": "gen2"}
    cli = [sys.executable, "-m", "services.cli.main", "--address", playground.address, "generate", job.id]
    streamed = subprocess.run([*cli, "--messages", str(chat), "--max-new-tokens", "6", "--stream"],
                              capture_output=True, text=True, env=env, timeout=120)
    assert streamed.returncode == 0 and "tokens, first after" in streamed.stderr, streamed.stderr
    as_json = json.loads(subprocess.run([*cli, "--prompt", PROMPT, "--max-new-tokens", "6", "--json"],
                                        capture_output=True, text=True, env=env, timeout=120).stdout)
    assert as_json["weights"] == "adapter" and as_json["done"]["tokens"] > 0
    started = time.monotonic()
    assert subprocess.run([*cli], capture_output=True, text=True, env=env, timeout=60).returncode == 2
    assert time.monotonic() - started < 60

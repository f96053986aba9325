"""Did training work, seen from the training child: answers to sample prompts at each evaluation and
at the end (greedy, so the same weights give the same text), and early stopping at the evaluation
where the loss stopped improving, ending with the best weights."""

from __future__ import annotations

import random

import pytest
from safetensors.torch import load_file

from tests.helpers import ChildRunner

pytestmark = pytest.mark.slow
_forking: list[ChildRunner] = []


@pytest.fixture(scope="module", autouse=True)
def zygote():
    runner = ChildRunner()
    _forking.append(runner)
    yield
    _forking.clear()
    runner.close()


def sums(n: int) -> list[dict]:
    rng = random.Random(5)
    return [{"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                          {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}
            for a, b in ((rng.randint(0, 9), rng.randint(0, 9)) for _ in range(n))]


BASE = {"max_steps": 6, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "max_seq_length": 64,
        "learning_rate": 5e-3, "eval_strategy": "steps", "eval_steps": 2, "save_steps": 0,
        "dataset": {"eval_split": 0.25}}


def test_answers_come_at_each_evaluation_and_at_the_end_and_repeat_for_the_same_weights(tmp_path, tiny_model):
    prompts = ["What is 2 plus 3?", "What is 7 plus 1?"]
    rc, events, _ = _forking[0].run(tmp_path, {**BASE, "base_model": str(tiny_model), "samples": {
        "prompts": prompts, "max_new_tokens": 8}}, sums(48))
    assert rc == 0, events[-1]
    samples = [e["samples"] for e in events if "samples" in e]
    assert [(s["step"], s.get("final", False)) for s in samples] == [("2", False), ("4", False), ("6", False),
                                                                        ("6", True)]
    assert all([a["prompt"] for a in s["answers"]] == prompts for s in samples)
    assert all(0 < a["tokens"] <= 8 for s in samples for a in s["answers"])
    # the last evaluation and the end answer with the same weights: greedy decoding repeats itself
    assert samples[2]["answers"] == samples[3]["answers"]
    # the answers come while the run says it is evaluating (the watchdog's evaluation limits apply)
    phase = ""
    for e in events:
        phase = e["phase_changed"]["phase"] if "phase_changed" in e else phase
        if "samples" in e:
            assert phase == "PHASE_EVALUATION", e["samples"]["step"]


def test_early_stopping_stops_at_the_right_evaluation_and_ends_with_the_best_weights(tmp_path, tiny_model):
    """A threshold no evaluation can beat after the first: the best is step 2, two evaluations without
    improvement (steps 4 and 6) stop the run at 6 of its 30 steps, and the final adapter is step 2's."""
    config = {**BASE, "base_model": str(tiny_model), "max_steps": 30, "early_stopping_patience": 2,
              "early_stopping_threshold": 100.0, "save_total_limit": 1}
    rc, events, job_dir = _forking[0].run(tmp_path, config, sums(48))
    assert rc == 0, events[-1]
    assert [e["eval"]["step"] for e in events if "eval" in e] == ["2", "4", "6"]
    assert max(int(e["metrics"]["step"]) for e in events if "metrics" in e) == 6
    saved = [e["checkpoint_saved"]["name"] for e in events if "checkpoint_saved" in e]
    assert saved == ["checkpoint-2"]  # a new best is saved though the job saves no checkpoints itself
    result = events[-1]["result"]
    assert result["outcome"] == "RUN_OUTCOME_SUCCEEDED"
    assert result["stop_reason"].startswith("stopped early at step 6") and "step 2" in result["stop_reason"]
    final = load_file(str(job_dir / "adapter" / "adapter_model.safetensors"))
    best = load_file(str(job_dir / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors"))
    assert final.keys() == best.keys() and all(final[k].equal(best[k]) for k in final)


def test_without_patience_a_run_trains_to_its_last_step(tmp_path, tiny_model):
    rc, events, _ = _forking[0].run(tmp_path, {**BASE, "base_model": str(tiny_model), "max_steps": 4,
                                               "early_stopping_threshold": 100.0}, sums(32))
    assert rc == 0 and "stop_reason" not in events[-1]["result"]
    assert max(int(e["metrics"]["step"]) for e in events if "metrics" in e) == 4

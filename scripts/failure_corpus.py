"""Produce the failure corpus: run every case of scripts/failure_cases.py for real and keep its log.

    .venv/bin/python scripts/failure_corpus.py [--only NAME ...] [--out tests/fixtures/corpus]

Each case runs the trainer's own child through its RunSupervisor (scripts/capture_failure.py), on a
tiny Qwen2 model or a damaged copy of it, on a dataset made here. The result goes to
OUT/<split>/cpu-<name>/ as log.txt and meta.json; a case that did not fail is reported and not kept.

The split is by cause and fixed before any run: within each category the causes are ordered by the
sha256 of their text and dealt alternately to the test half and the development half, test first
(the older fixtures in tests/fixtures/failures are all development cases). The test half is for
measuring only: no rule is written while looking at one of its misses.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "sdk" / "python"), str(REPO / "scripts")]

import capture_failure  # noqa: E402
from failure_cases import CASES  # noqa: E402
from failure_rounds import ROUNDS  # noqa: E402


def split_of(cases: list[dict]) -> dict[str, str]:
    """cause -> "test" or "dev". The first round's causes: by category, in sha256 order, dealt test,
    dev, test, ...; a later round's cause by the parity of its sha256 alone, so that adding causes
    never moves one already split."""
    by_category = defaultdict(list)
    out = {}
    for c in cases:
        if c.get("round", 1) == 1:
            by_category[c["category"]].append(c["cause"])
        else:
            out[c["cause"]] = "test" if int(hashlib.sha256(c["cause"].encode()).hexdigest(), 16) % 2 == 0 else "dev"
    for causes in by_category.values():
        for i, cause in enumerate(sorted(set(causes), key=lambda t: hashlib.sha256(t.encode()).hexdigest())):
            out[cause] = "test" if i % 2 == 0 else "dev"
    return out


def split_for(cause: str) -> str:
    """The half of any cause: the trainer's cases' split where it is one of theirs (a bare-TRL run of
    the same cause goes with it), else the parity of its sha256, like every later round's."""
    known = split_of(CASES)
    if cause in known:
        return known[cause]
    return "test" if int(hashlib.sha256(cause.encode()).hexdigest(), 16) % 2 == 0 else "dev"


def given(case: dict, **keys: str) -> dict:
    """What the case sets of `keys` (its name -> the name meta.json gives it), for the runtime record."""
    return {meta: case[name] for name, meta in keys.items() if case.get(name)}


def _with(hook: str) -> list:
    """The later rounds that have `hook` (write_datasets, write_models, damage): a round that needs no
    files of its own, or damages no checkpoint, leaves it out."""
    return [later for later in ROUNDS if hasattr(later, hook)]


def write_datasets(root: Path) -> None:
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)

    def lines(name, rows):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    sums = [(rng.randint(0, 99), rng.randint(0, 99)) for _ in range(64)]
    chat = [{"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                          {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]} for a, b in sums]
    lines("chat.jsonl", chat)
    lines("long.jsonl", [{"messages": [{"role": "user", "content": " ".join(f"w{rng.randint(0, 999)}" for _ in range(400))},
                                       {"role": "assistant", "content": "ok"}]} for _ in range(64)])
    lines("qa.jsonl", [{"question": f"{a}+{b}?", "answer": str(a + b)} for a, b in sums])
    lines("instruction-only.jsonl", [{"instruction": f"Add {a} and {b}."} for a, b in sums])
    lines("prompt-completion.jsonl", [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a, b in sums])
    lines("preference-chat.jsonl", [{"prompt": [{"role": "user", "content": f"{a}+{b}?"}],
                                     "chosen": [{"role": "assistant", "content": str(a + b)}],
                                     "rejected": [{"role": "assistant", "content": str(a - b)}]} for a, b in sums])
    lines("strings.jsonl", [f"{a} plus {b}" for a, b in sums])
    (root / "binary.jsonl").write_bytes(rng.randbytes(8192))
    (root / "not.parquet").write_text("".join(json.dumps(r) + "\n" for r in chat))
    (root / "empty.jsonl").write_text("")
    (root / "numbers.json").write_text(json.dumps(list(range(64))))
    (root / "header-only.csv").write_text("prompt,completion\n")
    (root / "chat.txt").write_text((root / "chat.jsonl").read_text())
    (root / "trailing.json").write_text(json.dumps(chat) + "\nthat was all of it\n")
    lines("chosen-only.jsonl", [{"prompt": f"{a}+{b}=", "chosen": str(a + b)} for a, b in sums])
    lines("odd-roles.jsonl", [{"conversations": [{"from": "robot", "value": f"{a}+{b}?"},
                                                 {"from": "alien", "value": str(a + b)}]} for a, b in sums])
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": [f"{a}+{b}=" for a, b in sums], "completion": [str(a + b) for a, b in sums]}),
                   root / "full.parquet")
    whole = (root / "full.parquet").read_bytes()
    (root / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    # the fourth round
    (root / "utf16.jsonl").write_bytes((root / "chat.jsonl").read_text().encode("utf-16"))
    (root / "ragged.csv").write_text("prompt,completion\n" + "".join(f"{a}+{b}=,{a + b},{a - b}\n"
                                                                    for a, b in sums))
    (root / "object.json").write_text(json.dumps({"rows": len(chat), "data": chat}))
    (root / "folder.jsonl").mkdir(exist_ok=True)
    (root / "folder.jsonl" / "part-0.jsonl").write_text((root / "chat.jsonl").read_text())
    for later in _with("write_datasets"):
        later.write_datasets(root)


def write_models(root: Path) -> dict[str, str]:
    """name -> model path (or hub id) for every model a case names."""
    from safetensors.torch import load_file, save_file

    from services.trainer.tiny import make_tiny_model

    tiny = make_tiny_model(root / "tiny")
    models = {"tiny": str(tiny), "missing": str(root / "no-such-model"), "relative": "./tiny"}

    def variant(name, change):
        path = root / name
        shutil.copytree(tiny, path)
        change(path)
        models[name] = str(path)

    def edit_config(path, **values):
        cfg = json.loads((path / "config.json").read_text())
        cfg.update(values)
        (path / "config.json").write_text(json.dumps(cfg))

    def no_template(path):
        for f in path.glob("chat_template.*"):
            f.unlink()
        tc = json.loads((path / "tokenizer_config.json").read_text())
        tc.pop("chat_template", None)
        (path / "tokenizer_config.json").write_text(json.dumps(tc))

    def truncate(path):
        w = path / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])

    def garbage(path):
        w = path / "model.safetensors"
        data = bytearray(w.read_bytes())
        data[:64] = b"\xff" * 64
        w.write_bytes(bytes(data))

    def small_vocab(path):
        weights = load_file(path / "model.safetensors")
        weights = {k: (v[:300].clone() if v.shape[0] == 512 and "embed" in k else v) for k, v in weights.items()}
        save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
        edit_config(path, vocab_size=300)

    variant("no-template", no_template)
    variant("no-config", lambda p: (p / "config.json").unlink())
    variant("no-weights", lambda p: [f.unlink() for f in p.glob("*.safetensors")])
    variant("truncated-weights", truncate)
    variant("garbage-weights", garbage)
    variant("shape-mismatch", lambda p: edit_config(p, intermediate_size=96))
    variant("unknown-type", lambda p: edit_config(p, model_type="qwen9", architectures=["Qwen9ForCausalLM"]))
    variant("small-vocab", small_vocab)
    variant("weights-renamed", lambda p: (p / "model.safetensors").rename(p / "weights.safetensors.bak"))
    variant("zeroed-weights", lambda p: (p / "model.safetensors").write_bytes(bytes((p / "model.safetensors")
                                                                                      .stat().st_size)))
    variant("config-not-json", lambda p: (p / "config.json").write_text("model_type: qwen2\n"))
    (root / "empty-folder").mkdir()
    models.update({"empty-folder": str(root / "empty-folder"), "tilde": "~/no-such-models/tiny",
                   "file": str(tiny / "config.json")})
    variant("no-tokenizer", lambda p: [f.unlink() for f in p.iterdir()
                                       if f.name.startswith(("tokenizer", "special_tokens", "chat_template", "vocab",
                                                             "merges"))])
    for later in _with("write_models"):
        later.write_models(root, tiny, variant, models)
    return models


def checkpoint_for(case: dict, workdir: Path, model: str, data: str) -> str:
    """A real checkpoint from a good two-step run in `workdir`, then damaged as the case says."""
    good = dict(case["config"], max_steps=2, save_steps=2)
    config = capture_failure.resolved_config(good, model, data)
    result = capture_failure.run_child(config, workdir, {}, timeout=600, attempt=0)
    found = sorted(workdir.rglob("checkpoint-2"))
    if result["exit_code"] != 0 or not found:
        raise RuntimeError(f"the good run before {case['name']} did not leave a checkpoint")
    damage(found[0], case["resume"])
    return found[0].name  # as the scheduler names it: a checkpoint of this job


def damage(ckpt: Path, how: str) -> None:
    """Damage a real checkpoint folder as a case names it."""
    if any(later.damage(ckpt, how) for later in _with("damage")):
        return
    if how == "optimizer":
        f = ckpt / "optimizer.pt"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    elif how == "state":
        (ckpt / "trainer_state.json").write_text("{ not json")
    elif how == "scheduler":
        (ckpt / "scheduler.pt").write_bytes(b"not a torch file" * 8)
    elif how == "rng":
        f = ckpt / "rng_state.pth"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    elif how == "adapter":
        f = ckpt / "adapter_model.safetensors"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "adapter_config":
        (ckpt / "adapter_config.json").write_text("{ not json")
    elif how == "full_weights":
        f = ckpt / "model.safetensors"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "missing":
        shutil.rmtree(ckpt)
    elif how == "empty":
        for f in ckpt.iterdir():
            shutil.rmtree(f) if f.is_dir() else f.unlink()


def acting(case: dict):
    """What is done to the child at its first training step, as an on_step callable."""
    act = case.get("act")
    if act is None:
        return None, None
    kind, value = act
    if kind == "stop":
        return None, value

    def on_step(pid: int) -> None:
        if kind == "signal":
            os.kill(pid, value)
        elif kind == "rlimit_as":
            size = int(open(f"/proc/{pid}/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.prlimit(pid, resource.RLIMIT_AS, (size + value, resource.RLIM_INFINITY))
        elif kind == "rlimit_fsize":
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (value, resource.RLIM_INFINITY))

    return on_step, None


@contextlib.contextmanager
def small_filesystem(path: Path, size: int | None):
    """A tmpfs of `size` bytes mounted on `path` while the block runs (nothing where size is None): a
    filesystem that really fills, so that writes fail with ENOSPC."""
    if size is None:
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def run_case(case: dict, models: dict[str, str], data_root: Path, out_root: Path, split: str) -> str:
    with tempfile.TemporaryDirectory(prefix="ftlab-corpus-") as tmp, \
            small_filesystem(Path(tmp) / "job", case.get("tmpfs")):
        workdir = Path(tmp) / "job"
        workdir.mkdir(exist_ok=True)
        model = models.get(case["model"], case["model"].removeprefix("hub:"))
        data = str(data_root / case["data"])
        friendly = json.loads(json.dumps(case["config"]).replace("@data/", str(data_root) + "/"))
        resume = checkpoint_for(case, workdir, model, data) if case.get("resume") else ""
        config = capture_failure.resolved_config(friendly, model, data)
        on_step, stop_after = acting(case)
        env = dict(case.get("env", {}))
        saved = dict(os.environ)
        cwd = os.getcwd()
        os.chdir(workdir)  # where a relative path does not lead to the model
        try:
            result = capture_failure.run_child(config, workdir, env, stop_after, case.get("step_timeout"),
                                               timeout=600, resume=resume, on_step=on_step,
                                               load_timeout=case.get("load_timeout"),
                                               stop_at_start=case.get("stop_at_start"))
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(saved)
        # (the trainer fails a diverging run itself: one that ends cleanly did not diverge)
        failed = result["exit_code"] != 0 or any("error" in e for e in result["events"])
        if not failed:
            return f"did not fail (exit {result['exit_code']}): not kept"
        out = out_root / split / f"cpu-{case['name']}"
        if out.exists():
            shutil.rmtree(out)
        capture_failure.write_case(
            out, friendly, config, result, workdir, model if case["model"] != "relative" else "", str(data_root / "x"),
            case["how"], case["category"], case["phase"],
            {"env": env, "act": case.get("act"), "step_timeout_s": case.get("step_timeout"),
             "resume_damage": case.get("resume"),
             **given(case, tmpfs="tmpfs_bytes", load_timeout="load_timeout_s", stop_at_start="stop_at_start_s")},
            extra={"cause": case["cause"], "split": split, "resume_checkpoint": resume, "round": case.get("round", 1)},
            producer="scripts/failure_corpus.py", inputs=str(data_root.parent))
        errors = [e["error"]["type"] for e in result["events"] if "error" in e]
        return f"exit {result['exit_code']} signal {result['signal']} error {errors[-1] if errors else None}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    p.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "corpus"))
    args = p.parse_args(argv)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit gives EFBIG, as a full quota would
    splits = split_of(CASES)
    cases = [c for c in CASES if args.only is None or c["name"] in args.only]
    with tempfile.TemporaryDirectory(prefix="ftlab-corpus-inputs-") as tmp:
        root = Path(tmp)
        write_datasets(root / "data")
        models = write_models(root / "models")
        for c in cases:
            try:
                outcome = run_case(c, models, root / "data", Path(args.out), splits[c["cause"]])
            except Exception as exc:  # one case that cannot be produced does not stop the others
                outcome = f"not produced: {type(exc).__name__}: {exc}"
            if splits[c["cause"]] == "test":  # what a held-out case failed with is not looked at here
                outcome = "not kept" if "not kept" in outcome or "not produced" in outcome else "kept"
            print(f"{splits[c['cause']]:4} {c['name']:36} {c['category']:26} {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

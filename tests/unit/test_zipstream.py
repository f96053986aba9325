"""The streaming zip: valid for zipfile and unzip, sized before it is sent, resumable at any offset."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import zipfile
from pathlib import Path

import pytest

from services.artifacts.zipstream import CHUNK, MANIFEST, Archive, ArtifactChanged, Member, is_text, measure


def plan(files: dict[str, Path], digests: dict[str, object] | None = None) -> Archive:
    members = []
    for name, path in files.items():
        m = Member(name, path.stat().st_size, is_text(name), path=path)
        if digests and name in digests:
            m.digest = digests[name]
        elif m.deflate:
            m.digest = measure(m)
        members.append(m)
    return Archive(members)


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    rng = random.Random(0)
    out = {}
    for name, size, text in [("model/model.safetensors", 3 * CHUNK + 17, False), ("model/config.json", 900, True),
                             ("model/tokenizer.json", 2 * CHUNK + 5, True), ("logs/train.log", 0, True),
                             ("model/optimizer.pt", CHUNK, False)]:
        p = tmp_path / "src" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if text:
            words = [rng.choice(["loss", "step", "eval", "0.25", "{", "}", "token"]) for _ in range(size // 4 + 1)]
            p.write_bytes(" ".join(words).encode()[:size])
        else:
            p.write_bytes(rng.randbytes(size))
        out[name] = p
    return out


def test_archive_is_valid_sized_up_front_and_matches_its_manifest(files, tmp_path):
    archive = plan(files)
    data = b"".join(archive.stream())
    assert len(data) == archive.total_size
    out = tmp_path / "a.zip"
    out.write_bytes(data)
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == sorted([*files, MANIFEST])
        manifest = json.loads(z.read(MANIFEST))
        for entry in manifest["files"]:
            body = z.read(entry["name"])
            assert len(body) == entry["size"] == files[entry["name"]].stat().st_size
            assert hashlib.sha256(body).hexdigest() == entry["sha256"]
            assert body == files[entry["name"]].read_bytes()
        kinds = {i.filename: i.compress_type for i in z.infolist()}
    assert kinds["model/model.safetensors"] == zipfile.ZIP_STORED
    assert kinds["model/tokenizer.json"] == zipfile.ZIP_DEFLATED
    check = subprocess.run(["unzip", "-t", str(out)], capture_output=True, text=True)
    assert check.returncode == 0 and "No errors detected" in check.stdout, check.stdout + check.stderr


def test_same_plan_same_bytes_whether_digests_are_cached_or_not(files):
    first = plan(files)
    cold = b"".join(first.stream())
    warm = b"".join(plan(files, {m.name: m.digest for m in first.members}).stream())
    assert cold == warm


def test_resuming_at_random_offsets_gives_the_same_archive(files):
    whole = b"".join(plan(files).stream())
    rng = random.Random(1)
    offsets = sorted({0, 1, len(whole) - 1, len(whole)} | {rng.randrange(len(whole)) for _ in range(30)})
    for offset in offsets:
        # a fresh plan, as for a new request: nothing known but what planning measured
        assert b"".join(plan(files).stream(offset)) == whole[offset:], offset
    # a download cut several times, each part asked for from where the last one stopped
    got, cuts = b"", sorted(rng.sample(range(1, len(whole)), 5)) + [len(whole)]
    for cut in cuts:
        for chunk in plan(files).stream(len(got)):
            got += chunk
            if len(got) >= cut:
                got = got[:cut]
                break
    assert got == whole


def test_a_file_that_changes_after_planning_is_refused(files):
    archive = plan(files)
    with open(files["model/optimizer.pt"], "ab") as f:
        f.write(b"more")
    with pytest.raises(ArtifactChanged):
        b"".join(archive.stream())


@pytest.mark.slow  # streams 4 GiB
def test_member_over_4_gib_uses_zip64(tmp_path):
    """A sparse 4 GiB + 1 MiB file: ZIP64 sizes and offsets, readable by zipfile and unzip."""
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate((4 << 30) + CHUNK)
    small = tmp_path / "after.json"
    small.write_text('{"after": "the big one"}')
    archive = plan({"big.safetensors": big, "z/after.json": small})
    out = tmp_path / "big.zip"
    zero = bytes(CHUNK)
    with open(out, "wb") as f:  # zeros become holes, so the test needs no 4 GiB of disk
        for chunk in archive.stream():
            if chunk == zero[:len(chunk)]:
                f.seek(len(chunk), os.SEEK_CUR)
            else:
                f.write(chunk)
        f.truncate()
    assert out.stat().st_size == archive.total_size > 4 << 30
    with zipfile.ZipFile(out) as z:
        info = z.getinfo("big.safetensors")
        assert info.file_size == (4 << 30) + CHUNK
        assert z.read("z/after.json") == small.read_bytes()
        assert z.getinfo("z/after.json").header_offset > 4 << 30
        manifest = json.loads(z.read(MANIFEST))
    zeros = hashlib.sha256()
    for _ in range(4096 + 1):
        zeros.update(bytes(CHUNK))
    assert manifest["files"][0] == {"name": "big.safetensors", "size": (4 << 30) + CHUNK, "sha256": zeros.hexdigest()}
    # unzip finds the member past 4 GiB through the ZIP64 directory and checks its CRC
    check = subprocess.run(["unzip", "-t", str(out), "z/after.json"], capture_output=True, text=True)
    assert check.returncode == 0 and "No errors detected" in check.stdout, check.stdout + check.stderr
    # the same archive again, from an offset past the big member (its digest known): the same tail
    tail_from = archive.total_size - 4096
    again = plan({"big.safetensors": big, "z/after.json": small}, {m.name: m.digest for m in archive.members})
    with open(out, "rb") as f:
        f.seek(tail_from)
        assert b"".join(again.stream(tail_from)) == f.read()

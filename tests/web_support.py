"""Helpers for the web app tests: the model (the registry's tiny preset, or a stand-in), a free port, and a
server started in this process."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DEMO_IMAGES = sorted((REPO / "demo" / "tum_freiburg" / "images").glob("*.png"))
# 5 of the 17 TUM views, every other one: enough baseline for SfM to register them (consecutive frames are too
# close: DEMO_IMAGES[:3] leaves SfM without a model and the cameras come from the network)
SFM_VIEWS = DEMO_IMAGES[::2][:5]


class StandInModel:
    """Same interface as ``heads.Reconstructor`` for the web app: a fronto-parallel plane seen by cameras moving
    along x. Used only where the model registry is missing."""

    name = "stand-in"
    patch_size = 14

    def __init__(self, image_size: int = 112) -> None:
        self.cfg = SimpleNamespace(image_size=image_size)

    def predict(self, images: torch.Tensor, chunk_size: int | None = None, output_device: Any = None) -> Any:
        S, _, H, W = images.shape
        f = 0.8 * W
        K = torch.tensor([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]]).expand(S, 3, 3)
        extr = torch.zeros(S, 3, 4)
        extr[:, :3, :3] = torch.eye(3)
        extr[:, 0, 3] = -0.1 * torch.arange(S)
        g = torch.Generator().manual_seed(0)
        depth = 2 + 0.1 * torch.rand(S, H, W, 1, generator=g)
        conf = 1 + torch.rand(S, H, W, generator=g) * 5
        v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        x = (u - K[0, 0, 2]) / f * depth[..., 0]
        y = (v - K[0, 1, 2]) / f * depth[..., 0]
        pts = torch.stack([x - extr[:, 0, 3, None, None], y, depth[..., 0]], -1)
        descriptors = torch.nn.functional.normalize(images.mean(dim=(2, 3)), dim=-1)  # [S, 3] retrieval stand-in
        return SimpleNamespace(
            extrinsics=extr[None], intrinsics=K[None], images=images[None], depth=depth[None], depth_conf=conf[None],
            world_points=pts[None], world_points_conf=conf[None], descriptors=descriptors[None],
        )


class CountingModel:
    """Wraps a model and counts its forward passes."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0
        self.name = getattr(model, "name", "model")
        self.cfg = model.cfg
        self.patch_size = model.patch_size

    def predict(self, images: torch.Tensor, chunk_size: int | None = None, output_device: Any = None) -> Any:
        self.calls += 1
        return self.model.predict(images, chunk_size=chunk_size, output_device=output_device)


def tiny_model() -> Any:
    """The registry's ``mum-tiny`` (random weights, the same every run), or the model named by
    ``$MUM_WEB_TEST_MODEL`` (e.g. ``mum-default`` for the README screenshot); the stand-in without a registry."""
    try:
        import heads

        torch.manual_seed(0)
        model = heads.load_model(os.environ.get("MUM_WEB_TEST_MODEL", "mum-tiny"), device="cpu")
    except (ImportError, AttributeError):
        return StandInModel()
    return model


def files_in(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (relative path → size)."""
    out = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                out[os.path.relpath(path, folder)] = os.lstat(path).st_size
            except OSError:
                pass
    return out


def rss_mb() -> float:
    """This process's resident memory, MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll ``condition()`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: Any = None) -> None:
    """Poll ``url`` until it answers (any HTTP status) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def start_server(model: Any, tmp: Path, **cfg_overrides: Any):
    """Build and serve the app in this process on a free port; returns ``(app, url, model_cache)``."""
    from app.web.server import build_app, launch
    from app.web.handlers import WebConfig
    from app.web.model_cache import ModelCache

    named = os.environ.get("MUM_WEB_TEST_MODEL")  # the README screenshot: that model at its own input size
    cfg = WebConfig(device="cpu", long_side=None if named else 112, **cfg_overrides)
    label = named or "tiny"
    models = ModelCache("cpu", model=label, loader=lambda *a, **k: model, presets=[label])
    app = build_app(cfg, models)
    port = free_port()
    launch(app, cfg, "127.0.0.1", port, block=False, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    wait_http(url)
    return app, url, models



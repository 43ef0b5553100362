"""The shared reconstruction pipeline: out-of-memory fallback to smaller chunks; the options the command line
composes for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import heads
from app.engine.pipeline import reconstruct_arrays
from app.engine.network import predict_with_oom_fallback
from app.engine.options import NetworkOptions, PipelineOptions
from mum.errors import UserError


class OomAboveChunk:
    """Wraps a model; ``predict`` raises the CUDA out-of-memory error for chunks larger than ``limit``."""

    def __init__(self, model, limit: int) -> None:
        self.model, self.limit, self.chunks = model, limit, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict(self, images, chunk_size=None, output_device=None):
        self.chunks.append(chunk_size)
        if chunk_size is None or chunk_size > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.model.predict(images, chunk_size=chunk_size, output_device=output_device)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return heads.load_model("mum-tiny", device="cpu")


def test_oom_retries_with_smaller_chunks_and_same_result(tiny):
    images = torch.rand(6, 3, 64, 96)
    messages = []
    wrapped = OomAboveChunk(tiny, limit=1)
    pred = predict_with_oom_fallback(wrapped, images, chunk_size=6, say=messages.append)
    assert wrapped.chunks == [6, 3, 1]
    assert len(messages) == 2 and "retrying with 1 frame" in messages[-1]
    ref = tiny.predict(images, chunk_size=None)
    torch.testing.assert_close(pred.depth, ref.depth, atol=1e-5, rtol=1e-5)


def test_oom_at_chunk_one_is_a_user_error(tiny):
    with pytest.raises(UserError, match="fewer views"):
        predict_with_oom_fallback(OomAboveChunk(tiny, limit=0), torch.rand(2, 3, 32, 32), 4, say=lambda m: None)


def test_other_errors_are_not_swallowed(tiny):
    class Broken(OomAboveChunk):
        def predict(self, images, chunk_size=None, output_device=None):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        predict_with_oom_fallback(Broken(tiny, 1), torch.rand(2, 3, 32, 32), 4, say=lambda m: None)


def test_reconstruct_arrays_reports_original_pixels(tiny):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (300, 400, 3), dtype=np.uint8) for _ in range(3)]
    recon = reconstruct_arrays(tiny, ["a.png", "b.png", "c.png"], arrays,
                               options=PipelineOptions(fast=True, network=NetworkOptions(long_side=128)))
    assert recon.image_sizes == [(400, 300)] * 3 and recon.depth_size == (128, 96)
    # square pixels: one focal length per camera, even though the network predicts equal fields of view
    np.testing.assert_allclose(recon.intrinsics[:, 0, 0], recon.intrinsics[:, 1, 1])
    # intrinsics scale by original/network size: 400 px wide original, 128 px network
    np.testing.assert_allclose(recon.intrinsics[:, 0, 0], recon.network_intrinsics[:, 0, 0] * 400 / 128, rtol=1e-6)


def test_cpu_allocator_failure_counts_as_out_of_memory(tiny):
    """The CPU allocator's message ("can't allocate memory") gets the same fallback and, at the command line,
    the out-of-memory exit code instead of a traceback."""
    from app.engine.runtime import EXIT_OUT_OF_MEMORY, friendly_errors

    cpu_oom = RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 91268055040 bytes. Error code 12 (Cannot allocate memory)")

    class CpuOom(OomAboveChunk):
        def predict(self, images, chunk_size=None, output_device=None):
            self.chunks.append(chunk_size)
            if chunk_size > self.limit:
                raise cpu_oom
            return self.model.predict(images, chunk_size=chunk_size, output_device=output_device)

    wrapped = CpuOom(tiny, limit=1)
    predict_with_oom_fallback(wrapped, torch.rand(4, 3, 32, 32), 4, say=lambda m: None)
    assert wrapped.chunks == [4, 2, 1]

    @friendly_errors
    def command() -> int:
        raise cpu_oom

    assert command() == EXIT_OUT_OF_MEMORY


class Captured(Exception):
    """Stops ``mum-reconstruct`` where the engine starts: the options it was handed."""


@pytest.mark.parametrize("args, expected", [
    ([], {"fast": False, "fast_consistency": False, "long_input.window": None, "long_input.overlap": None,
          "long_input.sequence": None, "long_input.keep_pointmaps": False, "long_input.loop_closure": True,
          "network.long_side": None, "network.chunk_size": None, "dense.mode": "stereo", "dense.size": None,
          "cameras.native_log": "/dev/null"}),
    (["--window", "5", "--overlap", "2", "--sequence", "off", "--points-from", "pointmap", "--size", "96",
      "--chunk-size", "3", "--dense", "fitted", "--dense-size", "0"],
     {"fast": False, "long_input.window": 5, "long_input.overlap": 2, "long_input.sequence": False,
      "long_input.keep_pointmaps": True, "network.long_side": 96, "network.chunk_size": 3, "dense.mode": "fitted",
      "dense.size": 0}),
    (["--sequence", "on"], {"long_input.sequence": True}),
    (["--fast", "--json"], {"fast": True, "fast_consistency": True}),
])
def test_the_command_line_composes_one_options_object_per_stage(tmp_path, monkeypatch, args, expected):
    """Every ``mum-reconstruct`` flag that shapes the reconstruction lands in its stage's options object of the one
    :class:`~app.engine.options.PipelineOptions` handed to the orchestrator (docs/architecture.md, the options
    table); the device is the one the command chose."""
    import operator

    import app.engine.pipeline as pipeline
    from app.cli import main
    from app.engine.options import CameraOptions, LongInputOptions, NetworkOptions
    from app.engine.dense_options import DenseOptions

    seen = {}

    def capture(model, source, options, on_stage=None, warn=None, known=None):
        seen["options"] = options
        raise Captured

    monkeypatch.setattr(pipeline, "reconstruct_views", capture)
    views = [str(p) for p in sorted((Path(__file__).resolve().parents[1] / "demo" / "tum_freiburg" / "images")
                                    .iterdir())[:2]]
    with pytest.raises(Captured):
        main([*views, "-o", str(tmp_path / "scene.ply"), "--device", "cpu", *args])
    options = seen["options"]
    assert isinstance(options, PipelineOptions)
    for name, kind in (("long_input", LongInputOptions), ("network", NetworkOptions), ("cameras", CameraOptions),
                       ("dense", DenseOptions)):
        assert isinstance(getattr(options, name), kind)
    assert options.network.device == "cpu"
    got = {key: operator.attrgetter(key)(options) for key in expected}
    assert got == expected


DEFAULT_CLOUD = {"max_points": 2_000_000, "conf_percentile": 0.0, "mask_background": False, "source": "depth",
                 "frames": None}


@pytest.mark.parametrize("args, expected", [
    ([], DEFAULT_CLOUD),
    (["--fast"], {**DEFAULT_CLOUD, "conf_percentile": 50.0}),
    (["--max-points", "1234", "--conf-percentile", "20", "--mask-background", "--points-from", "pointmap"],
     {"max_points": 1234, "conf_percentile": 20.0, "mask_background": True, "source": "pointmap", "frames": None}),
])
def test_the_command_line_composes_the_clouds_options(tmp_path, monkeypatch, args, expected):
    """The cloud's flags land in the one :class:`~app.engine.options.CloudOptions` handed to
    :func:`~app.engine.point_budget.bounded_point_cloud` (the web app's viewer filters make the same object)."""
    import dataclasses

    import app.engine.point_budget as point_budget
    from app.cli import build_parser, write_exports
    from app.engine.options import CloudOptions

    seen = {}

    def capture(recon, options):
        seen["options"] = options
        raise Captured

    monkeypatch.setattr(point_budget, "bounded_point_cloud", capture)
    parsed = build_parser().parse_args(["in", "-o", str(tmp_path / "scene.ply"), *args])
    with pytest.raises(Captured):
        write_exports(tmp_path / "scene.ply", object(), parsed, lambda _m: None)
    assert isinstance(seen["options"], CloudOptions)
    assert dataclasses.asdict(seen["options"]) == expected


def test_the_web_viewers_filters_make_the_same_cloud_options():
    from app.engine.options import CloudOptions
    from app.web.session import RenderOptions

    render = RenderOptions(conf_percentile=30.0, frames=[0, 2], show_cameras=False, mask_background=True,
                           source="pointmap", max_points=500)
    assert render.cloud == CloudOptions(500, 30.0, True, "pointmap", [0, 2])

"""app/engine/frame_store.py: a long input's per-frame maps on disk, and the stages that walk them a block at a
time (the voxel cloud, the depth-map export) keeping only a block of them in memory."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.frame_store import frames_on_disk, on_disk, release_pages

MiB = 1 << 20


def _status(key: str) -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key)) / 1024  # MiB


def _reset_peak() -> None:
    """Start a new peak-RSS (VmHWM) measurement (Linux ≥ 4.0)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


linux_only = pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")


def test_disk_array_is_an_array_whose_contents_survive_release():
    a = frames_on_disk((6, 5, 4), np.float32)
    assert on_disk(a) and on_disk(a[2]) and on_disk(a[1:3, ::2]) and not on_disk(np.zeros(3))
    assert a.shape == (6, 5, 4) and a.dtype == np.float32 and a.flags.writeable and not a.any()
    a[:] = np.arange(a.size, dtype=np.float32).reshape(a.shape)
    release_pages(a)
    np.testing.assert_array_equal(a, np.arange(a.size, dtype=np.float32).reshape(a.shape))
    assert frames_on_disk((0, 5), bool).shape == (0, 5)
    release_pages(np.ones(3))  # an ordinary array: nothing happens


def test_a_full_disk_is_one_error_naming_tmpdir(monkeypatch):
    import errno
    import os
    import tempfile

    from mum.errors import UserError

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(UserError, match=f"^{tempfile.gettempdir()}: no room .*TMPDIR"):
        frames_on_disk((1000, 168, 224), np.float32)


@linux_only
def test_release_drops_the_pages_from_memory():
    a = frames_on_disk((64, 256, 256), np.float32)  # 16 MiB
    a[:] = 1.0
    before = _status("VmRSS")
    release_pages(a)
    assert before - _status("VmRSS") > 0.8 * a.nbytes / MiB
    assert float(a[63].sum()) == 256 * 256  # read back from the file


def _disk_reconstruction(S: int, h: int, w: int):
    """``S`` views of random depth, confidence and colours, every map on disk and out of memory."""
    from app.engine.reconstruction import Reconstruction
    from mum.io import ViewTransform

    depth, conf = frames_on_disk((S, h, w), np.float32), frames_on_disk((S, h, w), np.float32)
    valid, colors = frames_on_disk((S, h, w), bool), frames_on_disk((S, h, w, 3), np.uint8)
    rng = np.random.default_rng(0)
    for v in range(S):
        depth[v] = rng.uniform(1, 2, (h, w))
        conf[v] = rng.uniform(1, 3, (h, w))
        valid[v] = rng.random((h, w)) < 0.9
        colors[v] = rng.integers(0, 255, (h, w, 3))
        release_pages(depth, conf, valid, colors)
    K = np.array([[200.0, 0, w / 2], [0, 200.0, h / 2], [0, 0, 1]])
    cams = np.repeat(np.eye(4)[None], S, 0)
    cams[:, 0, 3] = np.arange(S) * 0.1
    return Reconstruction(names=[f"{v:03d}.png" for v in range(S)], image_sizes=[(w, h)] * S, cam_from_world=cams,
                          intrinsics=np.repeat(K[None], S, 0), depth=depth, depth_conf=conf,
                          world_points=np.broadcast_to(np.float32(np.nan), (S, h, w, 3)), world_points_conf=conf,
                          colors=colors, transforms=[ViewTransform.crop((w, h), (w, h), 0, 0, w, h)] * S, valid=valid)


@linux_only
def test_voxel_cloud_and_depth_export_hold_one_block_of_maps(tmp_path):
    """A 384-view reconstruction whose maps (112 MiB, twelve blocks of 32 views) are written to disk a view at a
    time; the cloud and the depth-map export read every view, and the process's peak memory grows by much less
    than the maps (one
    block, the cloud's points and temporaries: 11 to 19 MiB measured; kept in memory they would add 112 MiB)."""
    from app.engine.point_budget import voxel_point_cloud
    from app.exports.project_formats import write_depth_maps

    small = _disk_reconstruction(2, 16, 16)  # first calls import what they need: not what is measured
    voxel_point_cloud(small, 100, conf_percentile=10.0)
    write_depth_maps(tmp_path / "small", small)
    base = _status("VmRSS")
    _reset_peak()
    recon = _disk_reconstruction(384, 160, 160)
    maps_mib = sum(a.nbytes for a in (recon.depth, recon.depth_conf, recon.valid, recon.colors)) / MiB
    cloud = voxel_point_cloud(recon, 20_000)  # the default path's filter (a percentile samples every view)
    write_depth_maps(tmp_path / "depth", recon)
    grew = _status("VmHWM") - base
    assert 0 < len(cloud) <= 20_000 and len(list((tmp_path / "depth").glob("*.depth.npy"))) == recon.num_views
    assert grew < 0.25 * maps_mib, f"peak grew by {grew:.0f} MiB for {maps_mib:.0f} MiB of maps"


@linux_only
def test_web_viewer_cloud_of_a_long_input_holds_one_block_of_maps(tmp_path):
    """The web app's cloud (what its viewer and downloads show) of a long input (a sequence result, maps on
    disk) is the command line's: built a block of views at a time within its point budget, so the peak memory
    grows by much less than the maps (every view unprojected at once, :meth:`Reconstruction.point_cloud`, made it
    grow by 566 MiB)."""
    from app.web.session import RenderOptions, WebScene

    small = _disk_reconstruction(2, 16, 16)
    small.meta["sequence"] = {}
    WebScene.create(small, tmp_path).cloud(RenderOptions(max_points=100))  # imports: not what is measured
    recon = _disk_reconstruction(384, 160, 160)
    recon.meta["sequence"] = {}
    scene = WebScene.create(recon, tmp_path)
    maps_mib = sum(a.nbytes for a in (recon.depth, recon.depth_conf, recon.valid, recon.colors)) / MiB
    base = _status("VmRSS")
    _reset_peak()
    cloud = scene.cloud(RenderOptions(conf_percentile=10.0, frames=list(range(0, 384, 2)), max_points=20_000))
    grew = _status("VmHWM") - base
    assert 0 < len(cloud) <= 20_000 and set(np.unique(cloud.view)) <= set(range(0, 384, 2))
    assert grew < 0.25 * maps_mib, f"peak grew by {grew:.0f} MiB for {maps_mib:.0f} MiB of maps"


@linux_only
def test_chunked_path_keeps_each_views_maps_on_disk(monkeypatch):
    """The chunked path (app/engine/chunked.py) on 384 views in chunks of 32 sharing 8, each chunk's
    reconstruction made up here (random maps at 160 × 160, the same for a view in either chunk that holds it,
    so the joins are identities): the assembled maps are the owning chunks' (on disk), and the process's peak
    memory grows by much less than the 112 MiB of maps (one chunk's maps, its shared views and the made-up
    chunk's temporaries: 36 MiB measured; with the store in memory instead, 138 MiB)."""
    from app.engine import chunked
    from app.engine.options import LongInputOptions, PipelineOptions
    from app.engine.planning import Plan, plan_chunks
    from app.engine.reconstruction import Reconstruction
    from app.engine.view_source import ViewSource
    from mum.io import ViewTransform

    S, h, w = 384, 160, 160
    K = np.array([[200.0, 0, w / 2], [0, 200.0, h / 2], [0, 0, 1]])

    def view_maps(v: int):
        rng = np.random.default_rng(v)
        depth = rng.uniform(1, 2, (h, w)).astype(np.float32)
        depth[rng.random((h, w)) < 0.05] = np.nan  # pixels without depth
        return depth, rng.uniform(1, 3, (h, w)).astype(np.float32), rng.integers(0, 255, (h, w, 3), dtype=np.uint8)

    def fake_chunk(model, source, views, k, *args, clock=None, **kwargs):
        views = list(views)
        depth, conf, colors = (np.stack(a) for a in zip(*map(view_maps, views)))
        cams = np.repeat(np.eye(4)[None], len(views), 0)
        cams[:, 0, 3] = np.asarray(views) * 0.01
        recon = Reconstruction(names=[source.names[v] for v in views], image_sizes=[(w, h)] * len(views),
                               cam_from_world=cams, intrinsics=np.repeat(K[None], len(views), 0), depth=depth,
                               depth_conf=conf, world_points=np.broadcast_to(np.float32(np.nan), depth.shape + (3,)),
                               world_points_conf=conf, colors=colors,
                               transforms=[ViewTransform.crop((w, h), (w, h), 0, 0, w, h)] * len(views),
                               valid=np.isfinite(depth), meta={"network_size": (w, h)})
        descriptors = np.random.default_rng(k).normal(size=(len(views), 8))
        return chunked.chunk_result(k, views, recon, descriptors, keep_pointmaps=False)

    class Views(ViewSource):  # names and sizes only: the made-up chunks decode nothing
        def __init__(self, n: int) -> None:
            self.names, self.sizes = [f"{v:03d}.png" for v in range(n)], [(w, h)] * n

    monkeypatch.setattr(chunked, "_run_chunk", fake_chunk)
    source = Views(S)
    plan = Plan(sequence=False, chunks=plan_chunks(S, 32, 8), window=32, overlap=8, aspect=1.0)
    say = lambda _m: None  # noqa: E731
    options = PipelineOptions(fast=True, long_input=LongInputOptions(loop_closure=False))
    # a first run imports what the path needs: not what is measured
    chunked.reconstruct_in_chunks(None, Views(12), Plan(False, plan_chunks(12, 8, 3), 8, 3, 1.0), options, say, say)
    base = _status("VmRSS")
    _reset_peak()
    recon = chunked.reconstruct_in_chunks(None, source, plan, options, say, say)
    grew = _status("VmHWM") - base
    maps_mib = S * h * w * 12 / MiB
    assert all(on_disk(a) for a in (recon.depth, recon.depth_conf, recon.valid, recon.colors))
    owner = chunked.owners(plan.chunks, S)
    for v in (0, 27, 28, 200, S - 1):  # the owner's maps, scaled by its join (an identity here)
        depth, conf, colors = view_maps(v)
        np.testing.assert_allclose(recon.depth[v], depth, rtol=1e-4)
        np.testing.assert_array_equal(recon.valid[v], np.isfinite(depth))
        np.testing.assert_array_equal(recon.colors[v], colors)
        np.testing.assert_array_equal(recon.depth_conf[v], conf)
    assert len(set(owner)) == len(plan.chunks) > 12
    assert grew < 0.5 * maps_mib, f"peak grew by {grew:.0f} MiB for {maps_mib:.0f} MiB of maps"

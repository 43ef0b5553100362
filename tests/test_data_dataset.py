"""Dataset layer: crop/resize consistency, ground-truth frames and normalisation, samples, samplers, workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from mum.data.dataset import MultiViewBatchSampler, SampleKey, SceneDataset, SyntheticMultiViewDataset, collate
from geometry_support import project, unproject
from mum.data.groundtruth import mean_valid_distance, normalize_by_mean_distance, to_first_camera_frame
from mum.data.render import render_views
from mum.data.synthetic import SyntheticConfig, build_world, generate_scene, plan_cameras
from mum.data.views import CropBox, crop_box, crop_resize
from mum.geometry import depth_to_world_points

ROOM = SyntheticConfig(kinds=("room",))


def test_crop_resize_matches_rendering_with_the_new_intrinsics():
    """Crop + resize a 2× render; rendering the same world directly with the transformed intrinsics must give
    the same depth (nearest resampling) and nearly the same image."""
    seed, W, H = 4, 160, 120
    world = build_world(seed, ROOM)
    plan = plan_cameras(world, seed, 2, W, H, ROOM)
    big = render_views(world, plan.extrinsics, plan.intrinsics, W, H)
    box = CropBox(23, 11, 100, 75)  # off-centre crop, then 0.8× downscale to 80×60
    outs = [crop_resize(big["images"][i], plan.intrinsics[i], 80, 60, box, big["depths"][i], big["masks"][i]) for i in range(2)]
    K2 = np.stack([o["intrinsics"] for o in outs])
    direct = render_views(world, plan.extrinsics, K2, 80, 60, exposure=big["exposure"])
    for i, o in enumerate(outs):
        assert o["image"].shape == (60, 80, 3) and o["depth"].shape == (60, 80) and o["mask"].dtype == bool
        rel = np.abs(o["depth"] - direct["depths"][i]) / direct["depths"][i]
        assert np.median(rel) < 0.01 and np.mean(rel < 0.05) > 0.9
        diff = np.abs(o["image"].astype(float) - direct["images"][i].astype(float)).mean()
        assert diff < 20


def test_crop_resize_keeps_cross_view_reprojection():
    """After independent crops/resizes of two views, depth of view 0 reprojected into view 1 still matches."""
    scene = generate_scene(5, 2, 192, 144, SyntheticConfig(kinds=("room",), overlap=(0.9, 0.9)))
    rng = np.random.default_rng(0)
    outs = []
    for i in range(2):
        box = crop_box(192, 144, 4 / 3, scale=0.8, rng=rng)
        outs.append(crop_resize(scene.images[i], scene.intrinsics[i], 96, 72, box, scene.depths[i], scene.masks[i]))
    pts = unproject(outs[0]["depth"], outs[0]["intrinsics"], scene.extrinsics[0])[outs[0]["mask"]]
    uv, z = project(pts, outs[1]["intrinsics"], scene.extrinsics[1])
    px = np.round(uv).astype(int)
    inside = (z > 0) & (px[:, 0] >= 0) & (px[:, 0] < 96) & (px[:, 1] >= 0) & (px[:, 1] < 72)
    assert inside.sum() > 500
    d1 = outs[1]["depth"][px[inside, 1], px[inside, 0]]
    assert np.mean(np.abs(z[inside] - d1) < 0.03 * z[inside]) > 0.6


def test_crop_box_aspect_and_bounds():
    b = crop_box(640, 480, 1.0)
    assert b == CropBox(80, 0, 480, 480)
    rng = np.random.default_rng(1)
    for _ in range(20):
        b = crop_box(300, 200, 16 / 9, rng.uniform(0.5, 1), rng)
        assert 0 <= b.x0 and b.x0 + b.width <= 300 and 0 <= b.y0 and b.y0 + b.height <= 200
        assert abs(b.width / b.height - 16 / 9) < 0.05


def test_first_camera_frame_and_points():
    scene = generate_scene(9, 3, 48, 32, ROOM)
    E = torch.from_numpy(scene.extrinsics)
    rel = to_first_camera_frame(E)
    torch.testing.assert_close(rel[0], torch.eye(4, dtype=torch.float64)[:3])
    depth, K = torch.from_numpy(np.stack(scene.depths)).double(), torch.from_numpy(scene.intrinsics)
    world = depth_to_world_points(depth, E, K)  # engine world frame
    h, w = scene.depths[1].shape  # by hand: X_world = Rᵀ (d K⁻¹ [u, v, 1] − t)
    pix = np.stack([*np.meshgrid(np.arange(w), np.arange(h)), np.ones((h, w))], -1)
    cam = pix @ np.linalg.inv(scene.intrinsics[1]).T * scene.depths[1][..., None]
    by_hand = (cam - scene.extrinsics[1][:, 3]) @ scene.extrinsics[1][:, :3]
    np.testing.assert_allclose(world[1].numpy(), by_hand, atol=1e-6)
    first = depth_to_world_points(depth, rel, K)  # first-camera frame = world mapped by E0
    mapped = world @ E[0, :, :3].T + E[0, :, 3]
    torch.testing.assert_close(first, mapped, atol=1e-6, rtol=1e-6)


def test_normalization_gives_unit_mean_distance_and_handles_batches():
    pts = torch.randn(2, 3, 4, 5, 3) * 7
    valid = torch.rand(2, 3, 4, 5) > 0.3
    ext = torch.randn(2, 3, 3, 4)
    depth = torch.rand(2, 3, 4, 5)
    e2, d2, p2, scale = normalize_by_mean_distance(ext, depth, pts, valid)
    assert scale.shape == (2,)
    torch.testing.assert_close(mean_valid_distance(p2, valid), torch.ones(2))
    torch.testing.assert_close(e2[..., :3], ext[..., :3])
    torch.testing.assert_close(e2[1, ..., 3] * scale[1], ext[1, ..., 3])
    torch.testing.assert_close(d2[0] * scale[0], depth[0])
    assert mean_valid_distance(pts, torch.zeros_like(valid)).eq(1).all()  # no valid point: scale 1


def test_synthetic_sample_contents():
    ds = SyntheticMultiViewDataset("train", length=10, num_views=3, height=48, width=64)
    s = ds[2]
    assert s["images"].shape == (3, 3, 48, 64) and s["images"].dtype == torch.float32
    assert 0 <= s["images"].min() and s["images"].max() <= 1
    assert s["depths"].shape == (3, 48, 64) and s["valid_masks"].dtype == torch.bool
    assert s["world_points"].shape == (3, 48, 64, 3) and s["extrinsics"].shape == (3, 3, 4) and s["intrinsics"].shape == (3, 3, 3)
    torch.testing.assert_close(s["extrinsics"][0], torch.eye(4)[:3])
    torch.testing.assert_close(mean_valid_distance(s["world_points"], s["valid_masks"]), torch.tensor(1.0), rtol=1e-4, atol=1e-4)
    # normalised points are the normalised depth unprojected with the normalised cameras
    torch.testing.assert_close(depth_to_world_points(s["depths"], s["extrinsics"], s["intrinsics"]) * s["valid_masks"][..., None],
                               s["world_points"], atol=1e-4, rtol=1e-4)
    assert int(s["seed"]) == 2 and s["kind"] in ("room", "object", "terrain")
    raw = SyntheticMultiViewDataset("train", length=10, num_views=3, height=48, width=64, normalize=False)[2]
    torch.testing.assert_close(raw["depths"] / s["scale"], s["depths"], atol=1e-5, rtol=1e-5)
    # determinism, and test/train samples differ
    torch.testing.assert_close(ds[2]["images"], s["images"])
    t = SyntheticMultiViewDataset("test", length=10, num_views=3, height=48, width=64)[2]
    assert int(t["seed"]) != int(s["seed"])
    with pytest.raises(IndexError):
        ds[10]


def test_sample_key_overrides_and_random_crop():
    ds = SyntheticMultiViewDataset("train", length=4, num_views=2, height=32, width=32, crop_scale=(0.6, 0.9))
    s = ds[SampleKey(1, 5, 48, 80)]
    assert s["images"].shape == (5, 3, 48, 80)
    assert not torch.allclose(s["intrinsics"][:, 0, 2], torch.full((5,), (80 - 1) / 2))  # random crops moved it


def test_batch_sampler_groups_shapes_and_shards_ranks():
    sizes = [(32, 32), (24, 40)]
    ranks = [MultiViewBatchSampler(50, (2, 6), sizes, images_per_batch=12, seed=3, rank=r, world_size=2) for r in range(2)]
    b0, b1 = list(ranks[0]), list(ranks[1])
    assert len(b0) == len(b1) == len(ranks[0]) > 0
    seen = [k.index for b in b0 + b1 for k in b]
    assert len(seen) == len(set(seen))  # ranks take disjoint samples
    for batch in b0:
        assert len({(k.num_views, k.height, k.width) for k in batch}) == 1
        assert len(batch) == max(1, 12 // batch[0].num_views)
    ranks[0].set_epoch(1)
    assert [k.index for b in ranks[0] for k in b] != [k.index for b in b0 for k in b]


def test_dataloader_with_workers_and_batch_sampler():
    ds = SyntheticMultiViewDataset("val", length=8, num_views=2, height=32, width=32)
    sampler = MultiViewBatchSampler(8, (2, 3), [(32, 32), (32, 48)], images_per_batch=6, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert sum(b["images"].shape[0] for b in batches) == 8
    for b, keys in zip(batches, sampler):
        B, S = len(keys), keys[0].num_views
        assert b["images"].shape == (B, S, 3, keys[0].height, keys[0].width)
        assert b["extrinsics"].shape == (B, S, 3, 4) and len(b["kind"]) == B
    # the same samples come out of a worker as in the main process
    k = list(sampler)[0][0]
    torch.testing.assert_close(batches[0]["images"][0], ds[k]["images"])


def test_distributed_sampler_covers_dataset():
    ds = SyntheticMultiViewDataset("train", length=6, num_views=2, height=16, width=16)
    seen = []
    for rank in range(2):
        loader = DataLoader(ds, batch_size=3, sampler=DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0))
        for b in loader:
            assert b["images"].shape == (3, 2, 3, 16, 16)
            seen += b["index"].tolist()
    assert sorted(seen) == list(range(6))


def test_scene_dataset_on_posed_scene():
    scene = generate_scene(2, 6, 96, 64, SyntheticConfig(kinds=("object",)))
    ds = SceneDataset([scene], num_views=4, height=48, width=48, length=3, seed=1)
    s = ds[1]
    assert s["images"].shape == (4, 3, 48, 48) and s["valid_masks"].any()
    torch.testing.assert_close(s["intrinsics"][:, 0, 2], torch.full((4,), 23.5))
    torch.testing.assert_close(ds[1]["images"], s["images"])
    unposed = generate_scene(2, 2, 32, 32)
    unposed.extrinsics = None
    with pytest.raises(ValueError):
        SceneDataset([unposed])


def test_single_threaded_limits_blas_pools():
    """DataLoader workers limit numpy's BLAS pool to one thread (checked in a fresh process: the limit is
    process-wide)."""
    import subprocess
    import sys

    code = ("import numpy; from mum.data.dataset import single_threaded; single_threaded(); "
            "from threadpoolctl import threadpool_info; "
            "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[1]"

"""Feature-extraction API of the encoder and the multi-view MAE's behaviour."""

from __future__ import annotations

import pytest
import torch

from mum import Masking, build_autoencoder, build_encoder
from mum.image import imagenet_normalize


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_encoder("tiny").eval()


@pytest.mark.parametrize("shape", [(3, 3, 32, 48), (2, 3, 3, 48, 32)])
def test_extract_shapes_and_layers(encoder, shape):
    images = torch.rand(*shape)
    feats = encoder.extract(images, layers=[1, -1])
    lead = shape[:-3]
    P = (shape[-2] // 16) * (shape[-1] // 16)
    assert feats.patch_tokens.shape == (*lead, P, 192)
    assert feats.cls_token.shape == (*lead, 192)
    assert [t.shape for t in feats.intermediate] == [(*lead, P, 192)] * 2
    assert feats.grid_hw == (shape[-2] // 16, shape[-1] // 16)
    # the last requested layer is the final output; matches the official-API path
    torch.testing.assert_close(feats.intermediate[-1], feats.patch_tokens)
    flat = imagenet_normalize(images.reshape(-1, *shape[-3:]))
    ref = encoder.get_intermediate_layers(flat, n=[1])[0]
    torch.testing.assert_close(feats.intermediate[0].reshape(ref.shape), ref)


def test_extract_chunked_equals_unchunked(encoder):
    images = torch.rand(5, 3, 32, 32)
    a = encoder.extract(images)
    b = encoder.extract(images, chunk_size=2)
    torch.testing.assert_close(a.patch_tokens, b.patch_tokens, atol=1e-5, rtol=1e-5)


def test_rejects_non_patch_multiple(encoder):
    with pytest.raises(ValueError, match="multiple of the patch size"):
        encoder.extract(torch.rand(1, 3, 30, 32))


def test_masking_keeps_quarter_per_view():
    m = Masking.random(6, 20, 0.75, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert m.ids_keep.shape == (6, 5)
    assert torch.equal(m.mask.sum(1), torch.full((6,), 15.0))
    # visible patches are exactly those with mask 0
    for row in range(6):
        assert set(m.ids_keep[row].tolist()) == set((m.mask[row] == 0).nonzero().flatten().tolist())


def test_global_attention_mixes_views():
    """Changing one view changes the decoder's predictions for the other views (global attention),
    while the encoder output of the other views stays identical (per-view encoding)."""
    torch.manual_seed(0)
    ae = build_autoencoder("tiny").eval()
    imgs = torch.randn(1, 3, 3, 32, 32)
    ids = torch.stack([torch.randperm(4) for _ in range(3)])
    out1 = ae(imgs, ids_restore=ids)
    imgs2 = imgs.clone()
    imgs2[0, 2] += 1.0
    out2 = ae(imgs2, ids_restore=ids)
    torch.testing.assert_close(out1.latent[:2], out2.latent[:2])
    assert (out1.pred[0] - out2.pred[0]).abs().max() > 1e-4


def test_mae_loss_decreases_when_training():
    torch.manual_seed(0)
    ae = build_autoencoder("tiny")
    imgs = torch.randn(2, 2, 3, 32, 32)
    opt = torch.optim.AdamW(ae.parameters(), lr=1e-3)
    ids = torch.stack([torch.randperm(4) for _ in range(4)])  # one fixed masking: the model can fit it
    losses = []
    for _ in range(20):
        loss = ae(imgs, ids_restore=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_extract_layers_in_the_order_asked_and_in_range(encoder):
    images = torch.rand(2, 3, 32, 32)
    a = encoder.extract(images, layers=[1, 3])
    b = encoder.extract(images, layers=[3, 1, -1])
    torch.testing.assert_close(b.intermediate[0], a.intermediate[1])  # block 3 first, as asked
    torch.testing.assert_close(b.intermediate[1], a.intermediate[0])
    torch.testing.assert_close(b.intermediate[2], b.patch_tokens)
    with pytest.raises(ValueError, match="out of range"):
        encoder.extract(images, layers=[len(encoder.blocks)])


def test_map_chunks_is_the_unchunked_result() -> None:
    """The one chunked per-frame loop: any chunk size gives the all-at-once result, nested outputs included."""
    from mum.layers import map_chunks

    frames = torch.randn(2, 5, 3, 4)
    whole = (frames * 2, [frames.sum(-1)])
    for chunk in (None, 1, 3, 10):
        out = map_chunks(lambda x: (x * 2, [x.sum(-1)]), frames, chunk, batch_dims=2)
        torch.testing.assert_close(out[0], whole[0])
        torch.testing.assert_close(out[1][0], whole[1][0])
    with pytest.raises(ValueError):
        map_chunks(lambda x: x, frames, 0)

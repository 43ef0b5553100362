"""The image loader: every kind of bad or unusual input gives an image or a one-line UserError."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mum.io import list_image_paths, preprocess, read_image
from mum.errors import UserError


def _save(path, arr, **kw):
    Image.fromarray(arr).save(path, **kw)
    return path


def test_modes_become_rgb8(tmp_path):
    gray = _save(tmp_path / "g.png", np.full((8, 10), 100, np.uint8))
    assert read_image(gray).shape == (8, 10, 3)
    sixteen = tmp_path / "d16.png"
    Image.fromarray(np.full((8, 10), 65535, np.uint16)).save(sixteen)
    assert read_image(sixteen).max() == 255
    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :5, 3] = 255  # left half opaque red, right half transparent -> white
    out = read_image(_save(tmp_path / "a.png", rgba))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 9]) == (255, 255, 255)


def test_exif_rotation_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (20, 10, 3)


@pytest.mark.parametrize(
    "content, match",
    [(b"", "empty"), (b"not an image at all", "not a readable image")],
)
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(UserError, match=match) as info:
        read_image(p)
    assert "\n" not in str(info.value)


def test_truncated_jpeg(tmp_path):
    p = _save(tmp_path / "t.jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(UserError, match="truncated or corrupt"):
        read_image(p)


def test_listing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        list_image_paths(tmp_path / "empty")
    with pytest.raises(UserError, match="no such file"):
        list_image_paths(tmp_path / "missing")
    for n in ("b.png", "a.jpg"):
        _save(tmp_path / n, np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_image_paths(tmp_path)] == ["a.jpg", "b.png"]
    assert [p.name for p in list_image_paths(str(tmp_path / "*.png"))] == ["b.png"]
    with pytest.raises(UserError, match="not an image"):
        list_image_paths(tmp_path / "notes.txt")


def test_preprocess_mixed_sizes_and_intrinsics_mapping():
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), rng.integers(0, 255, (600, 600, 3), dtype=np.uint8)]
    batch, tfs = preprocess(ims, long_side=224, patch_size=16)
    assert batch.shape[-1] % 16 == 0 and batch.shape[-2] % 16 == 0 and batch.shape[0] == 2
    assert batch.dtype.is_floating_point and 0 <= batch.min() and batch.max() <= 1
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    for tf in tfs:
        back = tf.intrinsics_to_original(tf.intrinsics_to_network(K))
        np.testing.assert_allclose(back, K, atol=1e-9)
    # a bright square lands where the affine map says (pixel centres at integer coordinates)
    for shape in [(600, 600), (300, 900), (480, 640)]:
        im = np.zeros((*shape, 3), np.uint8)
        u, v = shape[1] * 0.6, shape[0] * 0.4
        im[int(v) - 12 : int(v) + 13, int(u) - 12 : int(u) + 13] = 255  # centre at (int(u), int(v))
        net, (tf,) = preprocess([im], long_side=224, patch_size=16)
        w = net[0, 0].numpy()
        ys, xs = np.mgrid[: w.shape[0], : w.shape[1]]
        centroid = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
        Kn = tf.intrinsics_to_network(np.array([[1.0, 0, int(u)], [0, 1, int(v)], [0, 0, 1]]))
        np.testing.assert_allclose(centroid, Kn[:2, 2], atol=0.3)


def _video(path, frames: int = 5) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()


def test_quoted_video_glob_and_a_folder_named_like_a_video(tmp_path, monkeypatch):
    """``"*.avi"`` (quoted, so the shell did not expand it) reads the one matching video; a folder called
    ``x.mp4`` is a folder of images; a pattern matching no or several videos is one clear error."""
    from mum.io import load_views

    monkeypatch.chdir(tmp_path)
    _video(tmp_path / "clip.avi")
    names, frames = load_views(["*.avi"])
    assert len(frames) == 5 and names[0].startswith("frame_")
    (tmp_path / "x.mp4").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.mp4" / "a.png")
    assert load_views(["x.mp4"])[0] == ["a.png"]
    with pytest.raises(UserError, match="matches 0 videos"):
        load_views(["*.mkv"])
    _video(tmp_path / "other.avi")
    with pytest.raises(UserError, match="matches 2 videos"):
        load_views(["*.avi"])


def test_network_size_rounds_halves_up():
    from mum.io import network_size

    assert network_size(1080, 1920, 128, 16) == (80, 128)  # 4.5 patches wide: 5, not Python's round-to-even 4
    assert network_size(640, 480, 128, 16) == (128, 96)
    assert network_size(3000, 10, 128, 16) == (128, 16)  # at least one patch


def test_image_size_is_the_loaders_size_after_exif_orientation(tmp_path):
    """Header sizes (lazy views, known cameras) must equal what the loader returns for a rotated JPEG."""
    from PIL import Image

    from mum.io import image_size, read_image

    for orientation, expected in ((1, (40, 30)), (3, (40, 30)), (6, (30, 40)), (8, (30, 40))):
        path = tmp_path / f"o{orientation}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.new("RGB", (40, 30), (10, 20, 30)).save(path, exif=exif)
        assert image_size(path) == expected
        assert read_image(path).shape[1::-1] == expected


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def test_png_orientation_from_its_chunks_without_decoding(tmp_path, monkeypatch):
    """A PNG's EXIF orientation, in an ``eXIf`` chunk before or after the pixels (Pillow finds a late one only
    by decoding the whole image), is read from the chunk headers: ``image_size`` agrees with the loader and
    decodes nothing."""
    import io

    from PIL import Image, PngImagePlugin

    from mum.io import image_size, read_image

    def png(orientation: int | None, late: bool) -> bytes:
        buf = io.BytesIO()
        exif = Image.Exif()
        if orientation is not None:
            exif[0x0112] = orientation
        Image.new("RGB", (40, 30), (10, 20, 30)).save(buf, "PNG", **({"exif": exif} if orientation and not late else {}))
        raw = buf.getvalue()
        if late and orientation is not None:  # eXIf between the last IDAT and IEND
            iend = raw.rindex(b"IEND") - 4
            raw = raw[:iend] + _png_chunk(b"eXIf", exif.tobytes()[6:]) + raw[iend:]
        return raw

    cases = {"none": (None, False, (40, 30)), "early6": (6, False, (30, 40)), "late6": (6, True, (30, 40)),
             "late8": (8, True, (30, 40)), "late3": (3, True, (40, 30))}
    for name, (orientation, late, expected) in cases.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(png(orientation, late))
        assert read_image(path).shape[1::-1] == expected, name
        with monkeypatch.context() as m:
            m.setattr(PngImagePlugin.PngImageFile, "load", lambda self: pytest.fail(f"{name}: decoded"))
            assert image_size(path) == expected, name


def test_png_with_a_broken_exif_chunk_is_one_error_line_from_the_header_too(tmp_path):
    """``image_size`` raised Pillow's SyntaxError ("not a TIFF file") for a PNG whose eXIf chunk is garbage, where
    the loader gives a one-line UserError: both refuse it the same way now, whether the chunk is early or late."""
    import io

    from mum.io import image_size, read_image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, "PNG")
    raw = buf.getvalue()
    iend, after_ihdr = raw.rindex(b"IEND") - 4, 8 + 25
    for name, data in (("late", raw[:iend] + _png_chunk(b"eXIf", b"garbage") + raw[iend:]),
                       ("early", raw[:after_ihdr] + _png_chunk(b"eXIf", b"garbage") + raw[after_ihdr:])):
        path = tmp_path / f"{name}.png"
        path.write_bytes(data)
        for read in (read_image, image_size):
            with pytest.raises(UserError, match="cannot decode image, truncated or corrupt"):
                read(path)

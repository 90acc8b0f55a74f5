"The bad-input corpus of the foundation issue: each input gives a correct image or the typed `ImageError`."
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from fmd_rice.core import ImageError
from fmd_rice.images import list_images, png_header_only, read_image, read_images

ASTRO = skdata.astronaut()
FMD_RICE = str(Path(sys.executable).parent / "fmd-rice")  # the console script of this environment


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    "Good and bad image files made here: name -> expected shape (good) or a word of the error (bad)."
    d = tmp_path_factory.mktemp("corpus")
    b = io.BytesIO(); Image.fromarray(ASTRO).save(b, "JPEG", quality=90); jpg = b.getvalue()
    (d / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is a text file, not a JPEG\n")
    (d / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    Image.new("RGB", (1, 1), (10, 20, 30)).save(d / "one.png")
    Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)).save(d / "grey16.png")
    Image.fromarray(ASTRO).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(np.dstack([ASTRO, np.full(ASTRO.shape[:2], 128, np.uint8)])).save(d / "rgba.png")
    Image.fromarray(ASTRO).save(d / "good.jpg")
    png = io.BytesIO()
    Image.fromarray(ASTRO[:20, :30]).save(png, "PNG")
    crc = bytearray(png.getvalue())
    crc[29] ^= 0xFF  # a bad CRC in the IHDR chunk: PIL says "cannot identify", we say which chunk is broken
    (d / "crc.png").write_bytes(bytes(crc))
    expect = {"truncated.jpg": "truncated", "zero.jpg": "empty", "text.jpg": "not an image",
              "bomb.png": "decompression bomb", "one.png": (1, 1, 3), "grey16.png": (30, 40, 3),
              "cmyk.jpg": (512, 512, 3), "rgba.png": (512, 512, 3), "good.jpg": (512, 512, 3),
              "crc.png": "corrupt PNG (broken PNG file (bad header checksum in b'IHDR'))"}
    return d, expect


def test_each_input(corpus):
    d, expect = corpus
    for name, want in expect.items():
        if isinstance(want, tuple):
            img = read_image(d / name)
            assert img.shape == want and img.dtype == np.uint8, name
        else:
            with pytest.raises(ImageError) as e:
                read_image(d / name)
            assert name in str(e.value) and want in e.value.reason, (name, str(e.value))


def test_pixels_are_right(corpus):
    d, _ = corpus
    assert tuple(read_image(d / "one.png")[0, 0]) == (10, 20, 30)
    assert (read_image(d / "rgba.png") == ASTRO).all()  # alpha dropped, colours untouched
    g = read_image(d / "grey16.png")
    assert (g[..., 0] == g[..., 1]).all() and g.max() == round(1199 * 50 / 65535 * 255)
    cmyk = read_image(d / "cmyk.jpg").astype(int)
    assert np.abs(cmyk - ASTRO).mean() < 12  # CMYK JPEG round trip keeps the picture


def test_batch_never_dies(corpus):
    d, expect = corpus
    res = list(read_images(list_images(d)))
    assert len(res) == len(expect)
    bad = {r.path.split("/")[-1] for r in res if not r.ok}
    assert bad == {k for k, v in expect.items() if isinstance(v, str)}
    assert all(r.image.shape[2] == 3 for r in res if r.ok)


def test_cli_reports_bad_files_and_exits_0(corpus):
    d, expect = corpus
    p = subprocess.run([FMD_RICE, "faces", str(d), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(out["errors"]) == sum(isinstance(v, str) for v in expect.values())
    good = {r["path"].split("/")[-1]: len(r["faces"]) for r in out["images"]}
    assert good["good.jpg"] == 1 and good["one.png"] == 0


def test_cli_fails_when_nothing_readable(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    p = subprocess.run([FMD_RICE, "faces", str(tmp_path / "a.jpg")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "a.jpg" in p.stderr

"""Throughput of the mask detector on Kaggle 853 photos, in one run:

- `fmd_rice` with the `fast` and the `accurate` preset, next to `face-mask-detector` (the peer to beat on speed);
- RetinaFace alone at each preset's resizing, to show how much classification and drawing add (target: the
  whole detector at most 1.3x RetinaFace alone).

Our detector is timed two ways: one `detect` call per image, and `detect_many` over the stream (what
`fmd-rice detect` and `evaluate` use: one image's faces are classified in a worker thread while RetinaFace runs
on the next). The ratio to RetinaFace alone is printed for both.

Usage: `.venv/bin/python tests/bench/detect.py [N]` (N photos, default 40; needs FMD_RICE_DATA).
"""
import os
import sys
import time
from pathlib import Path

from fmd_rice.detector import MaskDetector, render
from fmd_rice.images import read_image


def rate(fn, imgs):
    for im in imgs: fn(im)  # warm-up: every padded input shape is slow the first time it is seen
    t = time.perf_counter()
    for im in imgs: fn(im)
    return len(imgs) / (time.perf_counter() - t)


def rate_many(det, imgs, draw=False):
    list(det.detect_many(imgs))  # warm-up (see `rate`)
    t = time.perf_counter()
    for im, dets in zip(imgs, det.detect_many(imgs)):
        if draw: render(im, dets)
    return len(imgs) / (time.perf_counter() - t)


def main(n=40):
    folder = Path(os.environ.get("FMD_RICE_DATA", "")) / "kaggle853" / "images"
    if not folder.is_dir():
        print(f"skipped: no {folder} (set FMD_RICE_DATA)"); return
    imgs = [read_image(p) for p in sorted(folder.glob("*.jpg"))[:n]]
    print(f"{len(imgs)} Kaggle 853 photos, images/s on this machine")
    rows = []
    try:
        from fmd_rice.peers import FaceMaskDetectorPeer
        rows.append(("face-mask-detector", rate(FaceMaskDetectorPeer(), imgs)))
    except Exception as e:
        print(f"face-mask-detector: skipped ({e})")
    for preset in ("fast", "accurate"):
        det = MaskDetector(preset=preset)
        faces_only = rate(det.finder, imgs)
        serial = rate(det, imgs)
        piped = rate_many(det, imgs)
        piped_draw = rate_many(det, imgs, draw=True)
        rows += [(f"RetinaFace alone ({preset} resizing)", faces_only), (f"fmd_rice --preset {preset}, detect per image", serial),
                 (f"fmd_rice --preset {preset}, detect_many", piped), (f"fmd_rice --preset {preset}, detect_many + drawing", piped_draw)]
        print(f"  {preset}: detector / RetinaFace time ratio: detect_many {faces_only / piped:.2f} "
              f"(with drawing {faces_only / piped_draw:.2f}), one detect call per image {faces_only / serial:.2f}")
    for name, r in rows: print(f"{name:<52}{r:8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)

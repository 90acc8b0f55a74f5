"""Throughput of the mask detector on Kaggle 853 photos, in one run:

- `fmd_rice` with the `fast` and the `accurate` preset, next to `face-mask-detector` (the peer to beat on speed);
- RetinaFace alone at each preset's resizing, to show how much classification and drawing add (target: the
  whole detector at most 1.3x RetinaFace alone).

Usage: `.venv/bin/python tests/bench/detect.py [N]` (N photos, default 40; needs FMD_RICE_DATA).
"""
import os
import sys
import time
from pathlib import Path

from fmd_rice.detector import MaskDetector, render
from fmd_rice.images import read_image


def rate(fn, imgs):
    fn(imgs[0])  # warm-up (graph tracing, first shapes)
    t = time.perf_counter()
    for im in imgs: fn(im)
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
        full = rate(det, imgs)
        with_drawing = rate(lambda im: render(im, det(im)), imgs)
        rows += [(f"RetinaFace alone ({preset} resizing)", faces_only), (f"fmd_rice --preset {preset}", full),
                 (f"fmd_rice --preset {preset} + drawing", with_drawing)]
        print(f"  {preset}: detector / RetinaFace time ratio {faces_only / full:.2f} (with drawing {faces_only / with_drawing:.2f})")
    for name, r in rows: print(f"{name:<40}{r:8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)

"""Benchmark of the RetinaFace face finder: median ms per image and images/s.

Sizes 320x320, 640x640, 1024x768 (the astronaut photo resized), then 50 Kaggle 853 photos at their own
size (skipped, saying why, when FMD_RICE_DATA is not set). Run with `make bench` or
`.venv/bin/python tests/bench/faces.py`.
"""
import os
import statistics
import time
from pathlib import Path

import cv2
from skimage import data as skdata

from fmd_rice.faces import FaceFinder
from fmd_rice.images import read_image


def bench(finder, images, repeats=1):
    times = []
    for _ in range(repeats):
        for img in images:
            t = time.perf_counter(); finder(img); times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return med * 1000, len(times) / sum(times)


def main():
    finder = FaceFinder()
    astro = skdata.astronaut()
    finder(astro)  # load the graph and warm up
    print(f"{'input':<28}{'median ms':>10}{'images/s':>10}")
    for w, h in ((320, 320), (640, 640), (1024, 768)):
        img = cv2.resize(astro, (w, h))
        finder(img)  # one warm-up per new shape
        ms, ips = bench(finder, [img], repeats=20)
        print(f"{f'{w}x{h}':<28}{ms:>10.1f}{ips:>10.2f}")
    root = os.environ.get("FMD_RICE_DATA")
    folder = Path(root or "") / "kaggle853" / "images"
    if not root or not folder.is_dir():
        print(f"kaggle853: skipped (no {folder}; set FMD_RICE_DATA)")
        return
    imgs = [read_image(p) for p in sorted(folder.glob("*.jpg"))[:50]]
    for label, f in (("kaggle853 x50 native", finder), ("kaggle853 x50 long side 1024", FaceFinder(long_side=1024))):
        for img in imgs[:3]: f(img)
        ms, ips = bench(f, imgs)
        print(f"{label:<28}{ms:>10.1f}{ips:>10.2f}")


if __name__ == "__main__":
    main()

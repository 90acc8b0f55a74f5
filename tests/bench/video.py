"""Video input: does decoding frames ahead in a background thread (`fmd_rice.batch.prefetch`) pay on this machine?

A clip is made from Kaggle 853 photos (each photo letterboxed into 1280x720 and held for `HOLD` frames, MJPG in an
AVI, written to a temporary folder), then the `fast` preset labels every `EVERY`-th frame, the frames decoded in
turn (`iter_video_frames`) or ahead in a thread (`prefetch`, as `BatchInput.frames` does), in alternating rounds
in one process; the median images/s of each is printed, with decoding alone for scale.

Usage: `.venv/bin/python tests/bench/video.py [PHOTOS] [ROUNDS]` (default 60 photos, 5 rounds; needs FMD_RICE_DATA).
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np

from fmd_rice.batch import iter_video_frames, prefetch
from fmd_rice.core import data_root
from fmd_rice.detector import MaskDetector
from fmd_rice.images import read_image

SIZE, HOLD, EVERY = (1280, 720), 5, 5  # frame size, frames per photo, frames kept (one per photo)


def make_clip(photos, path):
    "An MJPG clip holding each photo for `HOLD` frames, letterboxed into `SIZE`."
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, SIZE)
    for p in photos:
        im = read_image(p)
        s = min(SIZE[0] / im.shape[1], SIZE[1] / im.shape[0])
        im = cv2.resize(im, (round(im.shape[1] * s), round(im.shape[0] * s)))
        frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
        frame[:im.shape[0], :im.shape[1]] = im
        for _ in range(HOLD): out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out.release()


def main(n=60, rounds=5):
    photos = sorted((data_root() / "kaggle853" / "images").glob("*.jpg"))[1::5][:n]
    det = MaskDetector(preset="fast")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        make_clip(photos, clip)
        runs = {"in turn": lambda: [det(im) for _, im in iter_video_frames(clip, EVERY)],
                "decoded ahead (prefetch)": lambda: [det(im) for _, im in prefetch(iter_video_frames(clip, EVERY))],
                "decoding alone": lambda: [im for _, im in iter_video_frames(clip, EVERY)]}
        for run in runs.values(): run()  # warm-up: the runtime compiles the frame's shape
        res = {k: [] for k in runs}
        for _ in range(rounds):
            for k, run in runs.items():
                t = time.perf_counter()
                k_n = len(run())
                res[k].append(k_n / (time.perf_counter() - t))
    print(f"{len(photos)} frames of {SIZE[0]}x{SIZE[1]} (every {EVERY}th of {len(photos) * HOLD}), `fast` preset, "
          f"{rounds} alternating rounds, load average {os.getloadavg()[0]:.1f}")
    print("| input | frames/s (median) | rounds |\n|---|---:|---|")
    for k, v in res.items(): print(f"| {k} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

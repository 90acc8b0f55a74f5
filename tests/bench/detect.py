"""`make bench`: one table, one process, peers and ours side by side on the same Kaggle 853 photos.

The method of `../shared/bench/speed_ratio.py`: every 5th photo in sorted order, the first N (default 150), read
once. Every row is warmed up with two passes over all photos (the second lets the optimised runtime compile its
models for the photos' frequent input shapes, `fmd_rice.runtime.OpenVinoFunction`); then R rounds (default 3), each
timing one pass of every row in turn, so that each round's rows see the same load on this shared machine. A row's
figure is its median over the rounds, and each ratio is the median of its per-round ratios, with the range beside
it. Every detector runs through `detect_many` (ours pipelined, a photo's faces classified while RetinaFace runs on
the next, only when its classifier runs in TensorFlow: `MaskDetector.pipeline`); RetinaFace alone is its `finder`
called photo by photo. Rows: AIZOO and face-mask-detector as their users run them (TensorFlow, OpenCV); our `fast`
and `accurate` presets and RetinaFace alone with each preset's settings (every pass it runs), in the runtime
`fmd_rice.runtime` chooses (OpenVINO when installed; each preset's classifier at its own precision,
`fmd_rice.detector.CLASSIFIER_PRECISION`); and the reference, `accurate` as it was before its small-face
options (one 960 px pass) with RetinaFace alone, in TensorFlow. Then the ratios of issue 12 and the peak resident
memory of the process after each row's warm-up (it only grows: one process).

Usage: `.venv/bin/python tests/bench/detect.py [N] [R]` (needs FMD_RICE_DATA, and FMD_RICE_PEERS for the peers).
Prints Markdown, ready for the README.
"""
import datetime
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fmd_rice.backbones import load_classifier
from fmd_rice.detector import PRESETS, MaskDetector
from fmd_rice.faces import GRAPH_SCORE
from fmd_rice.images import read_image
from fmd_rice.peers import get_detector
from fmd_rice.runtime import ENV_BACKEND, backend_name, precision_name


def seconds(run)->float:
    "Wall-clock seconds of one call of `run`."
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


def in_backend(backend, run):
    "`run` with `FMD_RICE_BACKEND` set to `backend` while it runs (the face finder reads it on every call)."
    def f():
        old = os.environ.get(ENV_BACKEND)
        os.environ[ENV_BACKEND] = backend
        try: return run()
        finally:
            if old is None: os.environ.pop(ENV_BACKEND, None)
            else: os.environ[ENV_BACKEND] = old
    return f


def peak_mb()->float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_name()->str:
    try: return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration): return platform.processor() or "?"


def main(n=150, rounds=3):
    folder = Path(os.environ.get("FMD_RICE_DATA", "")) / "kaggle853" / "images"
    if not folder.is_dir():
        print(f"skipped: no {folder} (set FMD_RICE_DATA)"); return
    imgs = [read_image(p) for p in sorted(folder.glob("*.jpg"))[1::5][:n]]
    backend, load0 = backend_name(), os.getloadavg()
    rows, mb = [], {}  # (key, label, run); peak RSS after each row's warm-up

    def add(key, label, run):
        run(); run()
        mb[key] = peak_mb()
        rows.append((key, label, run))
        print(f"  warmed up: {label}", file=sys.stderr, flush=True)

    for peer in ("aizoo", "face-mask-detector"):
        try: d = get_detector(peer)
        except Exception as e: print(f"{peer}: skipped ({e})", file=sys.stderr); continue
        add(peer, peer, lambda d=d: list(d.detect_many(imgs)))
    for preset in ("fast", "accurate"):
        det = MaskDetector(preset=preset)
        ls = PRESETS[preset]["long_side"]
        add(f"rf_{preset}", f"RetinaFace alone, `{preset}` ({ls} px, every pass), {backend}",
            lambda det=det: [det.finder(im) for im in imgs])
        add(preset, f"fmd_rice `{preset}`, {backend} (classifier {det.classifier.precision})",
            lambda det=det: list(det.detect_many(imgs)))
    if backend != "tensorflow":
        tf = lambda run: in_backend("tensorflow", run)
        # the reference: `accurate` as it was before its small-face options, one 960 px pass at score 0.5
        det = tf(lambda: MaskDetector(model=load_classifier(backend="tensorflow"), preset="accurate",
                                      score=GRAPH_SCORE, finder_options=dict(scales=(), refine=None)))()
        add("rf_accurate_tf", "RetinaFace alone, one 960 px pass, tensorflow",
            tf(lambda: [det.finder(im) for im in imgs]))
        add("accurate_tf", "fmd_rice, one 960 px pass, tensorflow (the reference)", tf(lambda: list(det.detect_many(imgs))))
    times = {key: [] for key, _, _ in rows}
    for k in range(rounds):
        for key, _, run in rows: times[key].append(seconds(run))
        print(f"  round {k + 1} of {rounds} done", file=sys.stderr, flush=True)
    rate = {key: len(imgs) / np.median(t) for key, t in times.items()}
    print(f"### Speed, {datetime.date.today()}: {len(imgs)} Kaggle 853 photos, one process, median of {rounds} rounds\n")
    print(f"Machine: {os.cpu_count()} cores ({cpu_name()}); load average {load0[0]:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end. Runtime: {backend}"
          + (f" (RetinaFace {precision_name()}; each preset's classifier as its row says)" if backend == "openvino" else "")
          + ".\n")
    print("| detector | images/s (median) | range over rounds | peak RSS after its warm-up (MB) |\n|---|---:|---:|---:|")
    for key, label, _ in rows:
        lo, hi = len(imgs) / max(times[key]), len(imgs) / min(times[key])
        print(f"| {label} | {rate[key]:.1f} | {lo:.1f}-{hi:.1f} | {mb[key]:.0f} |")
    print("\n| ratio | median of the rounds' ratios | range | target |\n|---|---:|---:|---|")
    for label, a, b, target in (
            ("`fast` / AIZOO (images/s)", "aizoo", "fast", ">= 1"),
            ("`fast` / face-mask-detector (images/s)", "face-mask-detector", "fast", ">= 2"),
            ("`fast` time / RetinaFace alone at its resizing", "fast", "rf_fast", "<= 1.3"),
            ("`accurate` time / RetinaFace alone at its resizing", "accurate", "rf_accurate", "<= 1.3"),
            ("`accurate` time / one 960 px pass in TensorFlow", "accurate", "accurate_tf", "<= 1.5")):
        if a not in times or b not in times: print(f"| {label} | - | - | {target} |"); continue
        per = np.array(times[a]) / np.array(times[b])  # the time of `a` over that of `b`, round by round
        print(f"| {label} | {np.median(per):.2f} | {per.min():.2f}-{per.max():.2f} | {target} |")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

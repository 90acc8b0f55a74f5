"""Faces per second of the packaged default classifier: `Classifier.predict` vs raw `model.predict` on the same tensors.

    .venv/bin/python tests/bench/classify.py [--reps 5]

Crops are already at the model's size (what the detector passes after `crop_faces`); a last line times a list of
variable-size crops, which `predict` resizes itself.
"""
import argparse
import time

import numpy as np

from fmd_rice.backbones import load_classifier


def rate(fn, n, reps):
    fn()  # warm-up (tracing)
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return n / float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    clf = load_classifier()
    S = clf.img_size
    rng = np.random.default_rng(0)
    print(f"default model: {clf.card.get('display')} ({clf.card.get('weights')}), {S}px; median of {a.reps} runs")
    print(f"{'batch':>6} {'Classifier.predict faces/s':>28} {'model.predict faces/s':>23} {'model(x) faces/s':>18}")
    for b in (1, 32, 128):
        x = rng.integers(0, 256, (b, S, S, 3), dtype=np.uint8)
        xf = x.astype(np.float32)
        r1 = rate(lambda: clf.predict(x), b, a.reps)
        r2 = rate(lambda: clf.model.predict(xf, batch_size=b, verbose=0), b, a.reps)
        r3 = rate(lambda: np.asarray(clf.model(xf, training=False)), b, a.reps)
        print(f"{b:>6} {r1:>28.1f} {r2:>23.1f} {r3:>18.1f}")
    crops = [rng.integers(0, 256, (int(s), int(s), 3), dtype=np.uint8) for s in rng.integers(8, 120, 128)]
    print(f"128 variable-size crops (8-120 px) through Classifier.predict: {rate(lambda: clf.predict(crops), 128, a.reps):.1f} faces/s")


if __name__ == "__main__":
    main()

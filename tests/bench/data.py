"""Throughput of the training pipeline (`make_dataset`) at 224x224 on the real corpus: images/s.

Prints: decode+resize (first pass), the same from the in-memory cache (later epochs), with augmentation
(flip, rotation/zoom, brightness/contrast, resolution degradation on half the images), and the integrity
check's speed. Usage: python tests/bench/data.py [N_IMAGES]
"""
import os
import sys
import time

from fmd_rice.core import data_root  # first: it quiets TensorFlow's start-up chatter
from fmd_rice.data import build_corpus, check_data, make_dataset
import tensorflow as tf

root = data_root(required=False)
if root is None:
    print("skipped: no data (set FMD_RICE_DATA)"); sys.exit(0)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
corpus = build_corpus(root)
df = corpus[corpus.split == "train"].sample(n=N, random_state=0)
print(f"{N} training images, 224x224, batch 64, {os.cpu_count()} CPU cores, TF {tf.__version__}")


def rate(ds, what):
    t = time.perf_counter(); n = 0
    for x, _ in ds: n += int(x.shape[0])
    dt = time.perf_counter() - t
    print(f"  {what:<48s} {n / dt:8.0f} images/s ({n} in {dt:.1f} s)")
    return n / dt


rate(make_dataset(df, 224), "decode + resize, no augmentation")
ds = make_dataset(df, 224, cache=True, shuffle=True)
rate(ds, "cache=True, first epoch (decode + fill cache)")
rate(ds, "cache=True, later epoch (from memory)")
rate(make_dataset(df, 224, augment=True, shuffle=True), "augment=True (no cache)")
ds = make_dataset(df, 224, augment=True, shuffle=True, cache=True)
rate(ds, "augment=True, cache=True, first epoch")
rate(ds, "augment=True, cache=True, later epoch")
pre = tf.keras.applications.mobilenet_v2.preprocess_input
rate(make_dataset(df, 224, preprocess=pre, augment=True, cache=True).take(10**9), "augment + MobileNetV2 preprocess, cache, 1st epoch")

for full in (False, True):
    t = time.perf_counter(); r = check_data(root, verify_images=full); dt = time.perf_counter() - t
    n = sum(d.get("images", 0) for d in r["datasets"].values())
    print(f"  check_data(verify_images={full}): {n} images in {dt:.1f} s ({n / dt:.0f} images/s), ok={r['ok']}")

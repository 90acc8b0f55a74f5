"""Throughput of the Ray engine against the local engine, on the same Kaggle 853 photos, in one run.

Each engine runs `fmd-rice detect`'s work (default preset, no annotated images) on the first 20 and on the first
200 photos, each time into a fresh output folder. Images/s is the marginal rate (200 - 20) / (t200 - t20), so
that start-up (model loads, actors, the plan) does not count; Ray's start-up (the local instance, then the
slowest actor's model load) is printed on its own line. Targets on the 2-core machine: Ray with 2 workers at
least 0.9x the local engine, with 1 worker at least 0.8x.

Usage: `.venv/bin/python tests/bench/distributed.py [N_SMALL N_LARGE]` (default 20 200; needs FMD_RICE_DATA and
the extra `fmd_rice[ray]`).
"""
import os
import sys
import tempfile
import time
from pathlib import Path

from fmd_rice.batch import detect_paths
from fmd_rice.detector import MaskDetector


def folder_of(photos, root, name):
    d = Path(root) / name
    d.mkdir()
    for p in photos:
        (d / p.name).symlink_to(p)
    return d


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def main(n_small=20, n_large=200):
    folder = Path(os.environ.get("FMD_RICE_DATA", "")) / "kaggle853" / "images"
    if not folder.is_dir():
        print(f"skipped: no {folder} (set FMD_RICE_DATA)")
        return
    try:
        import ray
        from fmd_rice.distributed import detect_dataset, start_ray
    except ImportError:
        print('skipped: the Ray engine needs the extra: pip install "fmd_rice[ray]"')
        return
    photos = sorted(folder.glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))[:n_large]
    cpus = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        small, large = folder_of(photos[:n_small], tmp, "small"), folder_of(photos, tmp, "large")
        print(f"{n_small} and {len(photos)} Kaggle 853 photos, default preset, {cpus} CPUs; marginal images/s")
        det = MaskDetector()
        runs = {"local": lambda d, o: detect_paths(det, [d], o, annotate=False, formats=("json",))}
        for w in (1, 2):
            runs[f"ray, {w} worker(s)"] = lambda d, o, w=w: detect_dataset([str(d)], o, workers=w, batch_size=8)
        rates, t_init = {}, None
        try:
            for name, run in runs.items():
                if name != "local" and t_init is None:  # Ray starts after the local engine's runs
                    t_init, _ = timed(lambda: start_ray(num_cpus=cpus))  # a local instance on loopback
                t_small, s = timed(lambda: run(small, Path(tmp) / f"{name}-small"))
                t_large, s_large = timed(lambda: run(large, Path(tmp) / f"{name}-large"))
                assert s["images"] == n_small and s_large["images"] == len(photos), (s["images"], s_large["images"])
                rates[name] = (len(photos) - n_small) / (t_large - t_small)
                extra = ""
                if "timing" in s_large:
                    tm = s_large["timing"]
                    extra = (f"  (threads per actor {tm['threads']}, Ray CPUs per actor {tm['cpus_per_worker']:.2f}; "
                             f"slowest actor model load {tm['load_s']:.1f} s)")
                print(f"{name:<20} t{n_small} {t_small:7.1f} s  t{len(photos)} {t_large:7.1f} s  "
                      f"{rates[name]:6.2f} images/s{extra}", flush=True)
        finally:
            ray.shutdown()
        load = max(0.0, s_large["timing"]["load_s"])
        print(f"Ray start-up: local instance {t_init:.1f} s + actors' model load {load:.1f} s = {t_init + load:.1f} s")
        local = rates["local"]
        print(f"ratio ray 2 workers / local {rates['ray, 2 worker(s)'] / local:.2f} (target >= 0.9); "
              f"ray 1 worker / local {rates['ray, 1 worker(s)'] / local:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))

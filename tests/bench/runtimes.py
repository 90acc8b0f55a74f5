"""RetinaFace and the packaged classifier in each CPU runtime: TensorFlow, OpenVINO (f32, bf16; one dynamic-shape
model or a cache of models compiled per padded input shape) and ONNX Runtime, one process, on real photos.

- RetinaFace: ms per photo on Kaggle 853 photos (every 5th in sorted order, the first N), resized as the `fast` and
  the `accurate` presets resize them (`FaceFinder.prepare`), after a warm-up pass over the same photos (the first
  pass's extra time, compilation included, is printed as `first pass s`). The largest box difference from
  TensorFlow is in network pixels, over photos where both find the same number of faces.
- Classifier: ms per face at batch 1 and at batch 8 (a crowded photo's faces), on real face crops of those photos,
  with the largest probability difference from TensorFlow.

Usage: `.venv/bin/python tests/bench/runtimes.py [N]` (default 30; needs FMD_RICE_DATA; runtimes not installed are
skipped, saying so). The choice of `fmd_rice.runtime`'s backend rests on this table.
"""
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def timed(fn, xs):
    "Mean ms per call over `xs` after a warm-up pass; the warm-up pass's own seconds; the outputs."
    t = time.perf_counter()
    for x in xs: fn(x)
    first = time.perf_counter() - t
    t = time.perf_counter()
    outs = [fn(x) for x in xs]
    return (time.perf_counter() - t) / len(xs) * 1000, first, outs


def box_diff(outs, refs, xs):
    "Largest box difference in network pixels over inputs where both find the same faces; and how many differ."
    worst, differ = 0.0, 0
    for o, r, x in zip(outs, refs, xs):
        if o.shape != r.shape: differ += 1; continue
        if len(o): worst = max(worst, float(np.abs((o[:, :4] - r[:, :4]) * np.array([x.shape[2], x.shape[1]] * 2)).max()))
    return worst, differ


class ShapeCache:
    "OpenVINO models compiled per input shape, the least recently used dropped beyond `size`."
    def __init__(self, core, model, config, size=16):
        self.core, self.model, self.config, self.size, self.compiled = core, model, config, size, OrderedDict()

    def __call__(self, x):
        key = x.shape
        if key not in self.compiled:
            m = self.model.clone()
            m.reshape({m.inputs[0]: list(key)})
            self.compiled[key] = self.core.compile_model(m, "CPU", self.config)
            if len(self.compiled) > self.size: self.compiled.popitem(last=False)
        self.compiled.move_to_end(key)
        return self.compiled[key](x)[0]


def main(n=30):
    import tensorflow as tf
    from fmd_rice.backbones import load_classifier
    from fmd_rice.data import crop_faces
    from fmd_rice.faces import FaceFinder, load_retinaface, retinaface_graph_path
    from fmd_rice.images import read_image
    from fmd_rice.runtime import check_graph, parse_graph, verify_file
    folder = Path(os.environ.get("FMD_RICE_DATA", "")) / "kaggle853" / "images"
    if not folder.is_dir():
        print(f"skipped: no {folder} (set FMD_RICE_DATA)"); return
    imgs = [read_image(p) for p in sorted(folder.glob("*.jpg"))[::5][:n]]
    tf_rf = load_retinaface()
    p = retinaface_graph_path()
    gd = parse_graph(verify_file(p, "retinaface"), p)
    check_graph(gd, p)
    runtimes = {"TensorFlow": lambda x: tf_rf(tf.constant(x)).numpy()}
    clf = load_classifier()
    runtimes_c = {"TensorFlow": lambda x: clf._fn(x).numpy()}
    try:
        import openvino as ov
        core = ov.Core()
        m = ov.convert_model(gd)
        mc = ov.convert_model(clf.model, input=[(-1, clf.img_size, clf.img_size, 3)])
        for prec in ("f32", "bf16"):
            cfg = {"INFERENCE_PRECISION_HINT": prec, "PERFORMANCE_HINT": "LATENCY"}
            dyn = core.compile_model(m, "CPU", cfg)
            runtimes[f"OpenVINO {prec}, dynamic shape"] = lambda x, c=dyn: c(x)[0]
            runtimes[f"OpenVINO {prec}, model per shape"] = ShapeCache(core, m, cfg)
            dync = core.compile_model(mc, "CPU", cfg)
            runtimes_c[f"OpenVINO {prec}, dynamic batch"] = lambda x, c=dync: c(x)[0]
            runtimes_c[f"OpenVINO {prec}, model per batch"] = ShapeCache(core, mc, cfg)
    except ImportError as e:
        print(f"OpenVINO: skipped ({e})")
    try:
        import onnxruntime as ort
        import tf2onnx
        proto, _ = tf2onnx.convert.from_graph_def(gd, input_names=["x:0"], output_names=["Identity:0"], opset=17)
        s = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        runtimes["ONNX Runtime"] = lambda x, s=s: s.run(None, {"x:0": x})[0]
        spec = (tf.TensorSpec([None, clf.img_size, clf.img_size, 3], tf.float32, name="x"),)
        protoc, _ = tf2onnx.convert.from_function(tf.function(lambda x: clf.model(x, training=False)), spec, opset=17)
        sc = ort.InferenceSession(protoc.SerializeToString(), providers=["CPUExecutionProvider"])
        runtimes_c["ONNX Runtime"] = lambda x, s=sc: s.run(None, {"x": x})[0]
    except Exception as e:
        print(f"ONNX Runtime: skipped ({type(e).__name__}: {str(e)[:200]})")

    print(f"RetinaFace, {len(imgs)} Kaggle 853 photos, ms per photo (one process, {os.cpu_count()} cores)")
    print(f"{'runtime':<34}{'resizing':<10}{'shapes':>7}{'ms/photo':>10}{'first pass s':>13}{'max box diff px':>16}"
          f"{'photos differ':>14}")
    faces = {}
    for preset, finder in (("fast", FaceFinder(long_side=640, upscale=False)), ("accurate", FaceFinder(long_side=960))):
        xs = [finder.prepare(im)[0] for im in imgs]
        refs = None
        for name, fn in runtimes.items():
            ms, first, outs = timed(fn, xs)
            refs = outs if refs is None else refs
            worst, differ = box_diff(outs, refs, xs)
            print(f"{name:<34}{preset:<10}{len({x.shape for x in xs}):>7}{ms:>10.1f}{first:>13.1f}{worst:>16.4f}{differ:>14}")
        if preset == "accurate":
            faces = [finder(im) for im in imgs]
    crops = [c for im, fs in zip(imgs, faces) for c in crop_faces(im, [f.box for f in fs], margin=clf.margin,
                                                                    size=clf.img_size)]
    crops = clf.prepare(crops)
    print(f"\nclassifier ({clf.name}, {clf.img_size} px), {len(crops)} real face crops, ms per face")
    print(f"{'runtime':<34}{'batch':>6}{'ms/face':>9}{'max prob diff':>15}")
    for b in (1, 8):
        xs = [crops[i:i + b] for i in range(0, len(crops) - b + 1, b)][:max(8, 64 // b)]
        ref = None
        for name, fn in runtimes_c.items():
            ms, _, outs = timed(fn, xs)
            out = np.concatenate(outs)
            ref = out if ref is None else ref
            print(f"{name:<34}{b:>6}{ms / b:>9.2f}{float(np.abs(out - ref).max()):>15.2e}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)

"""Issue 12's paired check of a reduced precision: OpenVINO bf16 against f32, both presets, on the Kaggle 853 dev part
plus ILC 2021 val. bf16 passes when, over both sets, at least 99% of the f32 detector's faces have a bf16 face with
IoU >= 0.9 (one to one), at least 99.5% of those keep their label, and face recall (IoU 0.5 with the annotations)
is no lower. Prints one Markdown table. With `--classifier-only`, RetinaFace stays f32 in both runs and only the
mask classifier runs in bf16 (the faces are then the same, and the label is what is checked).

Usage: `.venv/bin/python tests/bench/precision.py [--classifier-only] [preset ...]` (default: fast accurate; needs
FMD_RICE_DATA and OpenVINO).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fmd_rice.backbones import load_classifier
from fmd_rice.data import dev_split, ilc_split, load_ilc2021, load_kaggle853
from fmd_rice.detector import MaskDetector
from fmd_rice.faces import match
from fmd_rice.images import read_image
from fmd_rice.runtime import ENV_PRECISION, openvino_available


def detections(preset, precision, images, classifier_only=False):
    "Every image's detections with the classifier (and RetinaFace, unless `classifier_only`) at `precision`."
    os.environ[ENV_PRECISION] = "f32" if classifier_only else precision  # the face finder reads it on every call
    det = MaskDetector(model=load_classifier(preset=preset, backend="openvino", precision=precision), preset=preset)
    return list(det.detect_many(images))


def main(presets=("fast", "accurate"), classifier_only=False):
    if not openvino_available():
        print("skipped: OpenVINO is not installed"); return
    dev = dev_split(load_kaggle853()[0])[0]
    ilc = load_ilc2021()[0]
    split = ilc_split(ilc)
    sets = {"Kaggle 853 dev": dev, "ILC 2021 val": [v for v in ilc if split.get(v.stem) == "val"]}
    print("| preset | set | faces (f32) | same faces (IoU >= 0.9) | same label | recall f32 | recall bf16 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for preset in presets:
        tot = dict(n=0, same=0, label=0, tp32=0, tp16=0, gt=0)
        for name, vocs in sets.items():
            imgs = [read_image(v.path) for v in vocs]
            a, b = detections(preset, "f32", imgs), detections(preset, "bf16", imgs, classifier_only)
            s = dict(n=0, same=0, label=0, tp32=0, tp16=0, gt=0)
            for v, da, db in zip(vocs, a, b):
                m = match([d.box for d in da], [d.box for d in db], [d.score for d in db], iou_thr=0.9)
                s["n"] += len(da)
                s["same"] += len(m.pairs)
                s["label"] += sum(da[i].label == db[j].label for i, j in m.pairs)
                gt = [f.box for f in v.faces]
                s["gt"] += len(gt)
                s["tp32"] += len(match(gt, [d.box for d in da], [d.score for d in da]).pairs)
                s["tp16"] += len(match(gt, [d.box for d in db], [d.score for d in db]).pairs)
            for k in tot: tot[k] += s[k]
            for label, x in ((name, s), ("both", tot) if name == list(sets)[-1] else (None, None)):
                if label is None: continue
                print(f"| {preset} | {label} | {x['n']} | {x['same'] / max(x['n'], 1):.4f} | "
                      f"{x['label'] / max(x['same'], 1):.4f} | {x['tp32'] / x['gt']:.4f} | {x['tp16'] / x['gt']:.4f} |",
                      flush=True)
        ok = tot["same"] >= 0.99 * tot["n"] and tot["label"] >= 0.995 * tot["same"] and tot["tp16"] >= tot["tp32"]
        what = "bf16 classifier" if classifier_only else "bf16"
        print(f"| {preset} | {what} {'passes' if ok else 'fails'} | | | | | |", flush=True)
    os.environ.pop(ENV_PRECISION, None)


if __name__ == "__main__":
    args = sys.argv[1:]
    only = "--classifier-only" in args
    main(tuple(a for a in args if a != "--classifier-only") or ("fast", "accurate"), classifier_only=only)

"Our VOC mAP@0.5 (single- and multi-label) against pycocotools' COCOeval at IoU 0.5 on the same predictions."
import numpy as np
import pytest

from fmd_rice.core import CLASSES
from fmd_rice.evaluation import evaluate_predictions

COCO_NOTE = ("COCOeval interpolates precision at 101 recall points; our VOC AP integrates the precision envelope at every "
             "recall step, so the two differ by the 101-point sampling only (under 0.001 on these predictions, checked against 0.005)")


def _predictions(images, seed=0):
    "Kaggle 853's faces, moved a little, some mislabelled, some missed, plus false positives: a detector-like output."
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for v in images:
        g = [{"box": list(f.box), "label": f.label} for f in v.faces]
        d = []
        for f in g:
            if rng.random() < 0.12: continue  # missed
            x1, y1, x2, y2 = f["box"]; w, h = x2 - x1, y2 - y1
            b = [x1 + rng.normal(0, 0.08) * w, y1 + rng.normal(0, 0.08) * h, x2 + rng.normal(0, 0.08) * w, y2 + rng.normal(0, 0.08) * h]
            p = rng.dirichlet(np.ones(3)); p[CLASSES.index(f["label"])] += rng.uniform(0, 1.5); p /= p.sum()
            d.append({"box": b, "score": float(rng.uniform(0.5, 1)), "probs": dict(zip(CLASSES, map(float, p)))})
        for _ in range(rng.poisson(0.4)):  # false positives
            x, y, s = rng.uniform(0, v.width - 20), rng.uniform(0, v.height - 20), rng.uniform(8, 40)
            p = rng.dirichlet(np.ones(3))
            d.append({"box": [x, y, x + s, y + s], "score": float(rng.uniform(0.5, 1)), "probs": dict(zip(CLASSES, map(float, p)))})
        for x in d:
            c = max(x["probs"], key=x["probs"].get)
            x.update(label=c, confidence=x["score"] * x["probs"][c])
        gts.append(g); dets.append(d)
    return gts, dets


def _coco_map(gts, dets, multilabel):
    pytest.importorskip("pycocotools", reason="pycocotools is not installed (pip install pycocotools==2.0.11)")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    xywh = lambda b: [b[0], b[1], b[2] - b[0], b[3] - b[1]]
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]
    anns, res, k = [], [], 0
    for i, (g, d) in enumerate(zip(gts, dets)):
        for f in g:
            k += 1; bb = xywh(f["box"])
            anns.append({"id": k, "image_id": i, "category_id": CLASSES.index(f["label"]) + 1, "bbox": bb, "area": bb[2] * bb[3], "iscrowd": 0})
        for x in d:
            for c in (CLASSES if multilabel else [x["label"]]):
                res.append({"image_id": i, "category_id": CLASSES.index(c) + 1, "bbox": xywh(x["box"]),
                            "score": x["score"] * x["probs"][c]})
    gt = COCO(); gt.dataset = {"images": [{"id": i} for i in range(len(gts))], "annotations": anns, "categories": cats}; gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(res), "bbox")
    ev.params.iouThrs = np.array([0.5]); ev.params.maxDets = [300]  # above the largest face count (115) x 3 classes
    ev.params.areaRng = [[0, 1e10]]; ev.params.areaRngLbl = ["all"]
    ev.evaluate(); ev.accumulate()
    prec = ev.eval["precision"][0, :, :, 0, 0]  # [recall points, classes]
    aps = [prec[:, k][prec[:, k] > -1].mean() for k in range(len(CLASSES)) if (prec[:, k] > -1).any()]
    return float(np.mean(aps))


@pytest.mark.parametrize("multilabel", [False, True])
def test_map50_matches_pycocotools(data_root, multilabel):
    from fmd_rice.data import load_kaggle853
    images, _ = load_kaggle853(data_root)
    assert max(len(v.faces) for v in images) == 115
    gts, dets = _predictions(images)
    ours = evaluate_predictions(gts, dets)["map50_multilabel" if multilabel else "map50"]
    coco = _coco_map(gts, dets, multilabel)
    print(f"multilabel={multilabel}: ours {ours:.4f}, pycocotools {coco:.4f}, difference {ours - coco:+.4f}; {COCO_NOTE}")
    assert abs(ours - coco) < 0.005, (ours, coco)

"Evaluation: the IoU matcher, AP, the accuracies and `evaluate` on hand-made cases with known answers."
import json
import math
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
from PIL import Image

from fmd_rice.core import CLASSES, DataError
from fmd_rice.detector import Detection
from fmd_rice.evaluation import (METRIC_KEYS, PAPER_ACCURACY_FORMULA, average_precision, confusion_matrix, evaluate,
                                 evaluate_predictions, face_accuracy, face_recall_precision, face_scores, iou,
                                 load_predictions, map50, match, metrics_from_records, paper_accuracy, recall_by_width,
                                 running_accuracy, save_predictions, voc_ap)


def gt(box, label="correct_mask"): return NS(box=box, label=label)
def det(box, label="correct_mask", conf=0.9): return NS(box=box, label=label, confidence=conf)


# --- IoU and the matcher ------------------------------------------------------------------------------

def test_iou_known_values():
    got = iou([(0, 0, 10, 10)], [(0, 0, 10, 10), (0, 0, 10, 5), (5, 5, 15, 15), (10, 0, 20, 10), (0, 0, 0, 0)])
    np.testing.assert_allclose(got, [[1.0, 0.5, 25 / 175, 0.0, 0.0]])
    assert iou(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 0)
    assert iou([(0, 0, 1, 1)] * 3, [(0, 0, 1, 1)] * 2).shape == (3, 2)


def test_match_prefers_confident_detection_and_flags_duplicate():
    m = match([(0, 0, 10, 10)], [(0, 0, 10, 9), (0, 0, 10, 10)], [0.5, 0.9])
    assert m.pairs.tolist() == [[0, 1]] and m.unmatched_det.tolist() == [0] and m.unmatched_gt.tolist() == []


def test_match_empty_sides():
    m = match([], [(0, 0, 1, 1)], [1.0])
    assert len(m.pairs) == 0 and m.unmatched_det.tolist() == [0]
    m = match([(0, 0, 1, 1), (2, 2, 3, 3)], [], [])
    assert len(m.pairs) == 0 and m.unmatched_gt.tolist() == [0, 1]


def test_match_threshold_is_inclusive():
    assert len(match([(0, 0, 10, 10)], [(0, 0, 10, 5)], [1]).pairs) == 1
    assert len(match([(0, 0, 10, 10)], [(0, 0, 10, 4.9)], [1]).pairs) == 0


def test_match_best_free_face_vs_strict_voc():
    gts, dets = [(0, 0, 10, 10), (2, 0, 12, 10)], [(0, 0, 10, 10), (1, 0, 11, 10)]
    assert match(gts, dets, [0.9, 0.8]).pairs.tolist() == [[0, 0], [1, 1]]
    assert match(gts, dets, [0.9, 0.8], strict_voc=True).pairs.tolist() == [[0, 0]]


def test_match_rejects_mismatched_scores():
    with pytest.raises(ValueError, match="scores"): match([(0, 0, 1, 1)], [(0, 0, 1, 1)], [0.1, 0.2])


# --- AP -----------------------------------------------------------------------------------------------

def test_ap_hand_computed_tp_fp_tp():
    g = [[gt((0, 0, 10, 10)), gt((20, 0, 30, 10)), gt((40, 0, 50, 10))]]
    d = [[det((0, 0, 10, 10), conf=0.9), det((60, 0, 70, 10), conf=0.8), det((20, 0, 30, 10), conf=0.7)]]
    ap = average_precision(g, d)
    assert ap["correct_mask"].ap == pytest.approx(5 / 9)     # 1/3 * 1 + 1/3 * 2/3
    assert math.isnan(ap["no_mask"].ap) and math.isnan(ap["incorrect_mask"].ap)
    assert map50(ap) == pytest.approx(5 / 9)


def test_ap_ranks_across_images_by_confidence():
    # image 1: a confident false positive; image 2: a less confident true positive. Ranked FP, TP -> AP 1/2.
    g = [[gt((0, 0, 10, 10))], [gt((0, 0, 10, 10))]]
    d = [[det((50, 50, 60, 60), conf=0.95)], [det((0, 0, 10, 10), conf=0.5)]]
    assert average_precision(g, d)["correct_mask"].ap == pytest.approx(0.5 * 0.5)


def test_ap_perfect_detector_is_one():
    g = [[gt((0, 0, 10, 10)), gt((20, 0, 30, 10), "no_mask")], [gt((0, 0, 30, 30), "incorrect_mask")], []]
    d = [[det(f.box, f.label) for f in im] for im in g]
    aps = average_precision(g, d)
    assert {c: aps[c].ap for c in CLASSES} == {c: 1.0 for c in CLASSES}
    assert map50(aps) == 1.0


def test_ap_duplicates_and_wrong_class():
    g = [[gt((0, 0, 10, 10))]]
    # the more confident of two detections of one face is the TP, the other a FP ranked after it: AP stays 1
    ap = average_precision(g, [[det((0, 0, 10, 10), conf=0.9), det((0, 0, 10, 9), conf=0.95)]])["correct_mask"]
    assert ap.ap == 1.0 and ap.precision.tolist() == [1.0, 0.5]
    # a duplicate ranked above another face's true positive costs precision: TP, FP, TP on 2 faces
    g2 = [[gt((0, 0, 10, 10)), gt((50, 0, 60, 10))]]
    d2 = [[det((0, 0, 10, 10), conf=0.9), det((0, 0, 10, 9), conf=0.8), det((50, 0, 60, 10), conf=0.7)]]
    assert average_precision(g2, d2)["correct_mask"].ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    ap = average_precision(g, [[det((0, 0, 10, 10), "no_mask")]])
    assert ap["correct_mask"].ap == 0.0 and math.isnan(ap["no_mask"].ap)
    assert average_precision(g, [[]])["correct_mask"].ap == 0.0


def test_voc_ap_envelope():
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert voc_ap([], []) == 0.0
    assert math.isnan(map50({"a": math.nan})) and map50({"a": 0.2, "b": math.nan, "c": 0.4}) == pytest.approx(0.3)


# --- face-level metrics and the paper's accuracy --------------------------------------------------------

def test_face_recall_precision_accuracy_confusion():
    g = [[gt((0, 0, 10, 10)), gt((20, 0, 30, 10), "no_mask"), gt((40, 0, 50, 10), "incorrect_mask")], []]
    d = [[det((0, 0, 10, 10)), det((20, 0, 30, 10), "correct_mask"), det((90, 0, 99, 9), "no_mask")], [det((0, 0, 5, 5))]]
    assert face_recall_precision(g, d) == {"face_recall": pytest.approx(2 / 3), "face_precision": pytest.approx(2 / 4)}
    assert face_accuracy(g, d) == pytest.approx(1 / 3)
    cm = confusion_matrix(g, d)
    assert cm["matrix"] == [[1, 0, 0], [0, 0, 0], [1, 0, 0]]
    assert cm["missed"] == {"correct_mask": 0, "incorrect_mask": 1, "no_mask": 0}
    assert cm["unmatched_detections"] == {"correct_mask": 1, "incorrect_mask": 0, "no_mask": 1}


def test_recall_by_width_buckets():
    g = [[gt((0, 0, 9.9, 9)), gt((0, 20, 10, 30)), gt((20, 0, 36, 16)), gt((40, 0, 80, 40))]]
    d = [[det((0, 20, 10, 30)), det((40, 0, 80, 40))]]
    rw = recall_by_width(g, d)
    assert [rw[b]["gt_faces"] for b in ("<10", "10-16", "16-32", ">=32")] == [1, 1, 1, 1]
    assert [rw[b]["recall"] for b in ("<10", "10-16", "16-32", ">=32")] == [0.0, 1.0, 0.0, 1.0]


def test_paper_accuracy_can_exceed_one():
    g = [[gt((0, 0, 10, 10))], [gt((0, 0, 10, 10), "no_mask"), gt((20, 0, 30, 10), "no_mask")], []]
    d = [[det((0, 0, 10, 10)), det((0, 0, 10, 8))],                     # two right detections of one face: 2/1
         [det((0, 0, 10, 10), "no_mask"), det((20, 0, 30, 10))],        # one right, one wrong class: 1/2
         [det((0, 0, 4, 4))]]                                            # no faces: skipped
    assert paper_accuracy(g, d) == pytest.approx((2 + 0.5) / 2)
    np.testing.assert_allclose(running_accuracy(g, d), [2.0, 1.25])
    assert face_accuracy(g, d) == pytest.approx(2 / 3)
    assert "a_i can exceed 1" in PAPER_ACCURACY_FORMULA


def test_empty_inputs_are_undefined_not_zero():
    m = evaluate_predictions([[], []], [[], []])
    assert m["images"] == 2 and m["gt_faces"] == 0
    for k in ("face_recall", "face_precision", "map50", "face_accuracy", "paper_accuracy"): assert math.isnan(m[k]), k
    m = evaluate_predictions([[gt((0, 0, 10, 10))]], [[]])            # no detections at all
    assert (m["face_recall"], m["map50"], m["face_accuracy"], m["paper_accuracy"]) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(m["face_precision"])


def test_detection_records_and_dicts_score_alike():
    d = Detection((0, 0, 10, 10), score=0.9, label="no_mask", probs=[0.1, 0.2, 0.7])
    g = [[gt((0, 0, 10, 10), "no_mask")]]
    a, b = evaluate_predictions(g, [[d]]), evaluate_predictions([[{"box": [0, 0, 10, 10], "label": "no_mask"}]], [[d.to_dict()]])
    assert a["ap50"] == b["ap50"] and a["face_accuracy"] == b["face_accuracy"] == 1.0
    np.testing.assert_allclose(face_scores([[d]]), [0.63], rtol=1e-5)
    np.testing.assert_allclose(face_scores([[d.to_dict()]], "prob"), [0.7], rtol=1e-5)


def test_metric_keys_and_json():
    m = evaluate_predictions([[gt((0, 0, 10, 10))]], [[det((0, 0, 10, 10))]])
    assert set(METRIC_KEYS) <= set(m)
    from fmd_rice.core import to_jsonable
    json.dumps(to_jsonable(m), allow_nan=False)


# --- evaluate(): running a detector, bad files, resuming ------------------------------------------------

class Fixed:
    "Finds one 20x20 correctly-masked face at the top left of every image."
    name = "fixed"
    def __init__(self): self.calls = 0
    def info(self): return {"detector": self.name, "description": "test double"}
    def __call__(self, image):
        self.calls += 1
        assert image.ndim == 3 and image.shape[2] == 3
        return [Detection((0, 0, 20, 20), score=0.9, label="correct_mask", probs=[0.8, 0.1, 0.1])]


@pytest.fixture
def tiny_set(tmp_path):
    for i in range(2): Image.new("RGB", (64, 48), (40 * i, 90, 120)).save(tmp_path / f"im{i}.png")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    (tmp_path / "truncated.png").write_bytes((tmp_path / "im0.png").read_bytes()[:60])
    faces = lambda *fs: [gt(*f) for f in fs]
    return [NS(path=tmp_path / "im0.png", stem="im0", width=64, height=48, faces=faces(((0, 0, 20, 20),))),
            NS(path=tmp_path / "corrupt.jpg", stem="corrupt", width=64, height=48, faces=faces(((0, 0, 20, 20),))),
            NS(path=tmp_path / "truncated.png", stem="truncated", width=64, height=48, faces=[]),
            NS(path=tmp_path / "missing.png", stem="missing", width=64, height=48, faces=[]),
            NS(path=tmp_path / "im1.png", stem="im1", width=64, height=48,
               faces=faces(((0, 0, 20, 20), "no_mask"), ((30, 0, 50, 20),)))]


def test_evaluate_survives_bad_files(tiny_set):
    m, recs = evaluate(Fixed(), tiny_set, progress=False)
    assert len(recs) == 5 and [r["stem"] for r in recs if r["error"]] == ["corrupt", "truncated", "missing"]
    assert all(Path(e["path"]).name in e["error"] for e in m["errors"])
    assert (m["images"], m["gt_faces"], m["detections"]) == (2, 3, 2)
    assert m["face_recall"] == pytest.approx(2 / 3) and m["face_accuracy"] == pytest.approx(1 / 3)
    assert m["paper_accuracy"] == pytest.approx(0.5) and m["detector"] == "fixed"
    assert m["seconds"] > 0 and m["images_per_second"] > 0
    with pytest.raises(Exception, match="corrupt.jpg"): evaluate(Fixed(), tiny_set, progress=False, on_error="raise")


def test_evaluate_records_detector_errors(tiny_set):
    class Broken(Fixed):
        def __call__(self, image): raise RuntimeError("boom")
    m, recs = evaluate(Broken(), tiny_set[:1], progress=False)
    assert recs[0]["error"] == "RuntimeError: boom" and m["images"] == 0


def test_evaluate_resumes_from_cache(tiny_set, tmp_path):
    cache = tmp_path / "out" / "predictions.json"
    m1, _ = evaluate(Fixed(), tiny_set, limit=1, progress=False, cache=cache)
    assert len(load_predictions(cache)) == 1
    d = Fixed(); m2, recs = evaluate(d, tiny_set, progress=False, cache=cache)
    assert d.calls == 1                                       # im0 came from the cache; only im1 was run
    d = Fixed(); m3, _ = evaluate(d, tiny_set, progress=False, cache=cache)
    assert d.calls == 0 and m3["face_recall"] == m2["face_recall"]
    assert metrics_from_records(load_predictions(cache), "fixed")["face_accuracy"] == m2["face_accuracy"]
    other = Fixed(); other.name = "other"
    with pytest.raises(DataError, match="another cache file"): evaluate(other, tiny_set, progress=False, cache=cache)


def test_predictions_file_round_trip_and_bad_file(tmp_path):
    p = save_predictions(tmp_path / "p.json", [{"path": "a", "gt": [], "detections": [], "error": None}], "x")
    assert load_predictions(p, "x")[0]["path"] == "a"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"): load_predictions(tmp_path / "bad.json")


def test_run_evaluate_on_real_kaggle853(data_root, tmp_path):
    from fmd_rice.evaluation import run_evaluate
    class Blind(Fixed):
        name = "blind"
        def __call__(self, image): return []
    r = run_evaluate(data_root / "kaggle853", Blind(), limit=3, out=tmp_path, progress=False)
    assert r["images"] == 3 and r["face_recall"] == 0.0 and r["errors"] == []
    assert json.loads((tmp_path / "metrics.json").read_text())["detector"] == "blind"


# --- multi-label AP and the fitted corrections ---------------------------------------------------------

def test_multilabel_ap_counts_second_choice():
    g = [[gt((0, 0, 10, 10)), gt((20, 0, 30, 10), "no_mask")]]
    d = [[Detection((0, 0, 10, 10), score=1.0, label="no_mask", probs=[0.4, 0.0, 0.6]),
          Detection((20, 0, 30, 10), score=1.0, label="no_mask", probs=[0.1, 0.0, 0.9])]]
    single, multi = average_precision(g, d), average_precision(g, d, multilabel=True)
    assert single["correct_mask"].ap == 0.0 and multi["correct_mask"].ap == 1.0
    # no_mask: 0.9 (TP), 0.6 (FP) -> AP 1; correct_mask: 0.4 (TP), 0.1 (FP) -> AP 1
    assert multi["no_mask"].ap == 1.0 and single["no_mask"].ap == 1.0
    m = evaluate_predictions(g, d)
    assert m["map50_multilabel"] == pytest.approx(1.0) and m["map50"] == pytest.approx(0.5)


def test_fit_corrections_recover_a_known_shift():
    from fmd_rice.evaluation import adjust_records, fit_box_adjust, fit_class_bias
    recs = [{"path": f"{i}.jpg", "stem": str(i), "width": 100, "height": 100, "error": None,
             "gt": [{"box": [10, 17, 30, 37], "label": lab}],
             "detections": [{"box": [10, 10, 30, 30], "score": 0.9, "label": "correct_mask",
                             "probs": {"correct_mask": 0.55, "incorrect_mask": 0.05, "no_mask": 0.4}}]}
            for i, lab in enumerate(["no_mask", "no_mask", "correct_mask"])]
    assert metrics_from_records(recs)["face_recall"] == 0.0            # 7 px off: IoU 0.48
    adj, tab = fit_box_adjust(recs)
    assert adj[0] == 1.0 and adj[3] == pytest.approx(0.2) and tab.face_recall[0] == 1.0   # as far down as the grid goes
    moved = adjust_records(recs, box_adjust=adj)
    bias, _ = fit_class_bias(moved)
    assert metrics_from_records(adjust_records(moved, class_bias=bias))["face_accuracy"] == pytest.approx(2 / 3)
    assert bias[2] > bias[0] and recs[0]["detections"][0]["box"] == [10, 10, 30, 30]


def test_evaluate_cli_on_a_voc_folder_with_ilc_names(data_root, tmp_path):
    "`fmd-rice evaluate --data DIR` scores any images/ + VOC annotations/ folder, here three ILC 2021 photos."
    import shutil
    from fmd_rice.cli import main
    src = data_root/"ilc2021"
    if not src.is_dir(): pytest.skip("ilc2021 not in the data root")
    d = tmp_path/"voc"; (d/"images").mkdir(parents=True); (d/"annotations").mkdir()
    stems = sorted(p.stem for p in (src/"annotations").glob("*.xml"))[:3]
    for s in stems:
        shutil.copy(src/"images"/f"{s}.jpg", d/"images"); shutil.copy(src/"annotations"/f"{s}.xml", d/"annotations")
    assert main(["evaluate", "--data", str(d), "--out", str(tmp_path/"out")]) == 0
    m = json.loads((tmp_path/"out"/"metrics.json").read_text())
    n = sum(xml.read_text().count("<object>") for xml in (d/"annotations").glob("*.xml"))
    assert m["images"] == 3 and m["gt_faces"] == n and m["face_recall"] > 0.5

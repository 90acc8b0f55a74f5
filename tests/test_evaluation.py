"""Evaluation on files: `evaluate` (bad files, detector errors, resuming), predictions files, real Kaggle 853 and ILC
folders, fitted corrections. The metrics' unit checks (IoU, matching, AP, accuracies) live in the notebooks
`nbs/04_faces.ipynb` and `nbs/09_evaluation.ipynb`."""
import json
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from PIL import Image

from fmd_rice.core import DataError
from fmd_rice.detector import Detection
from fmd_rice.evaluation import (average_precision, evaluate, evaluate_predictions, load_predictions,
                                 metrics_from_records, save_predictions)


def gt(box, label="correct_mask"): return NS(box=box, label=label)
def det(box, label="correct_mask", conf=0.9): return NS(box=box, label=label, confidence=conf)


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

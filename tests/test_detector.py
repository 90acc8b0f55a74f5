"The mask detector end to end: the demo photo's three classes, folders/videos, bad files, resuming."
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fmd_rice.core import CLASSES
from fmd_rice.batch import detect_paths, iter_video_frames
from fmd_rice.detector import Detection, MaskDetector, demo_photo


@pytest.fixture(scope="module")
def detector():
    return MaskDetector()


@pytest.fixture(scope="module")
def photo():
    return demo_photo()


def test_demo_photo_three_classes(detector, photo):
    img, truth = photo
    dets = sorted(detector(img), key=lambda d: d.box[0])
    assert [d.label for d in dets] == truth
    for d in dets:
        assert abs(float(d.probs.sum()) - 1) < 1e-4 and d.probs.max() > 0.5
        assert Detection.from_dict(json.loads(json.dumps(d.to_dict()))).label == d.label


def test_fast_preset_agrees(photo):
    img, truth = photo
    dets = sorted(MaskDetector(preset="fast")(img), key=lambda d: d.box[0])
    assert [d.label for d in dets] == truth


def test_detect_paths_folders_videos_bad_files_and_resume(tmp_path, detector, photo):
    img, truth = photo
    src = tmp_path / "in"; (src / "sub").mkdir(parents=True)
    Image.fromarray(img).save(src / "sub" / "demo.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    vw = cv2.VideoWriter(str(src / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (img.shape[1], img.shape[0]))
    for _ in range(4): vw.write(img[:, :, ::-1])
    vw.release()
    assert len(list(iter_video_frames(src / "clip.avi", every=2))) == 2
    out = tmp_path / "out"
    s = detect_paths(detector, [src], out, every=2)
    assert s["inputs"] == 3 and s["images"] == 3 and len(s["errors"]) == 1
    assert "broken.png" in s["errors"][0]["path"]
    assert s["by_class"] == {c: 3 for c in CLASSES}  # the photo, and each of two video frames
    assert sorted(p.name for p in (out / "annotated").iterdir()) == ["clip_f000000.jpg", "clip_f000002.jpg", "demo.jpg"]
    rows = (out / "detections.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 9
    # a second run redoes nothing (records exist) and gives the same summary
    stamp = (out / "records" / "demo.json").stat().st_mtime_ns
    assert detect_paths(detector, [src], out, every=2)["by_class"] == s["by_class"]
    assert (out / "records" / "demo.json").stat().st_mtime_ns == stamp


def test_detect_many_matches_detect_and_keeps_going(detector, photo):
    from fmd_rice.core import ImageError
    img, truth = photo
    out = list(detector.detect_many([img, b"not an image", img[:, : img.shape[1] // 3]]))
    assert len(out) == 3
    assert [(d.box, d.label) for d in out[0]] == [(d.box, d.label) for d in detector(img)]
    assert isinstance(out[1], ImageError)
    assert [d.label for d in out[2]] == truth[:1]
    assert list(detector.detect_many([])) == []


def test_corrections_move_boxes_and_reweight_classes(detector, photo):
    from fmd_rice.detector import apply_class_bias
    fitted = detector.classifier.corrections   # the corrections live on the classifier's card
    BOX_ADJUST, CLASS_BIAS = fitted["box_adjust"], fitted["class_bias"]
    assert BOX_ADJUST is not None and CLASS_BIAS is not None
    img, truth = photo
    raw = MaskDetector(detector.classifier, box_adjust=None, class_bias=None)
    unbiased = MaskDetector(detector.classifier, class_bias=None)   # the card's boxes, the classifier's own probabilities
    a = sorted(detector(img), key=lambda d: d.box[0]); b = sorted(raw(img), key=lambda d: d.box[0])
    u = sorted(unbiased(img), key=lambda d: d.box[0])
    assert [d.label for d in b] == truth
    for da, db, du in zip(a, b, u):
        h = db.box[3] - db.box[1]
        centre = lambda d: (d.box[1] + d.box[3]) / 2
        assert centre(da) - centre(db) == pytest.approx(BOX_ADJUST[3] * h, abs=0.5)   # moved down (not clipped here)
        assert da.box[3] - da.box[1] == pytest.approx(BOX_ADJUST[1] * h, abs=0.5)     # and scaled
        assert da.box == du.box
        np.testing.assert_allclose(da.probs, apply_class_bias(du.probs[None], CLASS_BIAS)[0], atol=1e-5)
    # explicit values replace the card's
    c = MaskDetector(detector.classifier, box_adjust=(1.0, 1.0, 0.0, 0.0), class_bias=(0.0, 0.0, 0.0), margin=0.3)
    assert c.box_adjust == (1.0, 1.0, 0.0, 0.0) and c.margin == 0.3
    np.testing.assert_allclose(c.class_bias, 0.0)
    p = apply_class_bias([[0.5, 0.25, 0.25]], (0.0, 0.0, np.log(2)))
    np.testing.assert_allclose(p, [[0.4, 0.2, 0.4]], atol=1e-6)

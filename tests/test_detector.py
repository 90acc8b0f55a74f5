"The mask detector end to end: the demo photo's three classes, folders/videos, bad files, resuming."
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fmd_rice.core import CLASSES
from fmd_rice.detector import Detection, MaskDetector, demo_photo, detect_paths, iter_video_frames


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

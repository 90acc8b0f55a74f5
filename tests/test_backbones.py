"The backbones chapter: weights resolution, the four builds, and the packaged default model on real crops."
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmd_rice.backbones import (BACKBONES, DEFAULT_MODEL, PACKAGED_MODELS, ModelError, build_classifier,
                                classification_metrics, classify_paths, crop_mistakes, load_classifier, resolve_weights)
from fmd_rice.core import CLASSES

# Floors each packaged model must meet (issue 4).
# The crowd classifier (trained on real crowd-scale faces, 2,500 web crops per class) gives up web-crop accuracy:
# Kaggle 12K test 0.996 -> 0.961 and MaskedFace-Net CMFD recall 0.86 -> 0.45 (card of 2026-12-02). The crowd-classifier
# issue asks for >= 0.99 on Kaggle 12K: that target is missed and reported in the README; these floors guard against
# falling further. The classifier shipped is the one `make paper` trains from a fresh clone (2026-12-06: top 60
# layers fine-tuned for 4 epochs); read as this file reads them, it has Kaggle 12K test 0.967 and MaskedFace-Net
# incorrect recall 0.972 (correct recall 0.633), so the incorrect-recall floor is the 0.95 (a retraining in
# a run folder holding caches of earlier runs once had 0.870). The same floors hold the `fast` preset's classifier (64 px,
# started from the `accurate` one; its card of 2026-12-06: Kaggle 12K test 0.972, MaskedFace-Net incorrect recall 0.963).
KAGGLE12K_ACC_FLOOR = 0.95
MFN_INCORRECT_RECALL_FLOOR = 0.95
MFN_ACC_FLOOR = 0.75
N_PER_CLASS = 150  # fixed sample per class of each test split (sorted, evenly spaced: deterministic)


def _sample(files, n):
    files = sorted(files)
    if len(files) <= n: return files
    return [files[i] for i in np.linspace(0, len(files) - 1, n).astype(int)]


@pytest.fixture(scope="module")
def default_clf():
    if not DEFAULT_MODEL.exists(): pytest.fail(f"packaged default model {DEFAULT_MODEL} is missing")
    return load_classifier()


@pytest.fixture(scope="module", params=list(PACKAGED_MODELS))
def packaged_clf(request):
    "Each preset's packaged classifier: every floor below holds for both."
    p = PACKAGED_MODELS[request.param]
    if not p.exists(): pytest.fail(f"packaged {request.param} model {p} is missing")
    return request.param, load_classifier(preset=request.param)


def _probs(clf, files):
    res = classify_paths(files, clf, progress=False)
    bad = [r for r in res if "error" in r]
    assert not bad, bad[:3]
    return np.array([[r["probs"][c] for c in CLASSES] for r in res])


def test_packaged_model_kaggle12k_test(packaged_clf, data_root):
    d = data_root/"kaggle12k"/"Test"
    if not d.is_dir(): pytest.skip(f"{d} not found")
    files = {"correct_mask": _sample((d/"WithMask").glob("*"), N_PER_CLASS),
             "no_mask": _sample((d/"WithoutMask").glob("*"), N_PER_CLASS)}
    y = [CLASSES.index(c) for c, fs in files.items() for _ in fs]
    p = _probs(packaged_clf[1], [f for fs in files.values() for f in fs])
    m = classification_metrics(y, p)
    assert m["accuracy"] >= KAGGLE12K_ACC_FLOOR, m



def test_crop_mistakes_are_the_cards_kaggle12k_errors(packaged_clf, data_root):
    """`crop_mistakes` on the whole Kaggle 12K test set finds exactly the errors behind the card's accuracy (the
    `classifier` step's `figures/mistakes_kaggle12k.md`), each a real crop with its folder's label, surest first."""
    d = data_root/"kaggle12k"/"Test"
    if not d.is_dir(): pytest.skip(f"{d} not found")
    rows = pd.DataFrame([{"path": str(f), "label": c} for c, sub in (("correct_mask", "WithMask"), ("no_mask", "WithoutMask"))
                         for f in sorted((d/sub).iterdir())])
    preset, clf = packaged_clf
    card = clf.card["metrics"]["test_kaggle12k"]
    assert card["n"] == len(rows), (card["n"], len(rows))
    mk = crop_mistakes(clf, rows, n=None)
    assert len(mk) == round((1 - card["accuracy"]) * card["n"]), (preset, len(mk), card["accuracy"])
    label = dict(zip(rows.path, rows.label))
    assert all(m["true"] == label[m["path"]] != m["pred"] for m in mk)
    assert [m["confidence"] for m in mk] == sorted((m["confidence"] for m in mk), reverse=True)
    assert crop_mistakes(clf, rows, n=3) == mk[:3]

def test_packaged_model_maskedface_incorrect(packaged_clf, data_root):
    from fmd_rice.data import build_corpus
    df = build_corpus(data_root, seed=0)
    t = df[(df.source == "maskedface-net") & (df.split == "test")]
    if t.empty: pytest.skip("no MaskedFace-Net test split")
    inc = _sample(t[t.label == "incorrect_mask"].path.tolist(), N_PER_CLASS)
    cor = _sample(t[t.label == "correct_mask"].path.tolist(), N_PER_CLASS)
    p = _probs(packaged_clf[1], inc + cor)
    m = classification_metrics([1] * len(inc) + [0] * len(cor), p)
    assert m["per_class"]["incorrect_mask"]["recall"] >= MFN_INCORRECT_RECALL_FLOOR, m
    assert m["accuracy"] >= MFN_ACC_FLOOR, m


def test_packaged_model_card(packaged_clf):
    preset, clf = packaged_clf
    card = clf.card
    for k in ("backbone", "weights", "img_size", "margin", "data", "splits", "metrics", "sha256", "trained"):
        assert k in card, k
    assert clf.img_size == card["img_size"] and card["preset"] == preset
    assert PACKAGED_MODELS[preset].stat().st_size < 25e6
    if card["weights_record"]["source"] == "none": assert "scratch" in card["weights"]
    p = clf.predict([np.zeros((17, 23, 3), np.uint8), np.full((300, 200, 3), 200, np.uint8)])
    assert p.shape == (2, 3) and np.allclose(p.sum(1), 1, atol=1e-4)


def test_sha256_mismatch_refused(tmp_path):
    if not DEFAULT_MODEL.exists(): pytest.fail("packaged default model missing")
    b = bytearray(DEFAULT_MODEL.read_bytes()); b[len(b) // 3] ^= 0x55
    (tmp_path/"m.keras").write_bytes(bytes(b))
    shutil.copy(DEFAULT_MODEL.with_suffix(".json"), tmp_path/"m.json")
    with pytest.raises(ModelError, match="does not match"): load_classifier(tmp_path/"m.keras")
    with pytest.raises(ModelError, match="not found"): load_classifier(tmp_path/"nope.keras")


def test_classify_paths_bad_file_is_reported(tmp_path, default_clf):
    (tmp_path/"bad.jpg").write_bytes(b"not a jpeg")
    ok = tmp_path/"ok.png"
    from fmd_rice.images import save_image
    save_image(ok, np.full((40, 30, 3), 120, np.uint8))
    res = classify_paths([tmp_path/"bad.jpg", ok], default_clf, progress=False)
    assert "error" in res[0] and res[0]["path"].endswith("bad.jpg")
    assert res[1]["label"] in CLASSES


def test_weights_resolution(weights_root, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    for n in ("mobilenet", "mobilenetv2"):
        r = resolve_weights(n, 128, "auto", weights_root)
        assert r["source"] == "imagenet" and r["origin"] == "weights-dir" and Path(r["file"]).is_file()
        assert Path(r["file"]).parent == weights_root
    for n in ("resnet50", "resnet50v2"):
        r = resolve_weights(n, 224, "auto", weights_root)
        assert r["source"] == "none" and "from scratch" in r["label"], r
        with pytest.raises(ModelError, match="no ImageNet weights"): resolve_weights(n, 224, "imagenet", weights_root)
    # a file in the Keras cache wins over the weights folder
    (tmp_path/"models").mkdir()
    shutil.copy(weights_root/"mobilenet_1_0_224_tf_no_top.h5", tmp_path/"models"/"mobilenet_1_0_224_tf_no_top.h5")
    assert resolve_weights("mobilenet", 224, "auto", weights_root)["origin"] == "keras-cache"
    assert resolve_weights("mobilenet", 224, "none", weights_root)["source"] == "none"


def test_pretrained_build_loads_weights(weights_root):
    m, rec = build_classifier("mobilenetv2", 96, "auto", weights_root)
    assert rec["source"] == "imagenet"
    assert not m.get_layer("backbone").trainable and sum(int(np.prod(v.shape)) for v in m.trainable_weights) == 1280 * 512 + 512 + 512 * 3 + 3
    # real ImageNet weights: the first conv kernel is not a fresh random init
    k = m.get_layer("backbone").get_layer("Conv1").get_weights()[0]
    import keras
    fresh = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None).get_layer("Conv1").get_weights()[0]
    assert not np.allclose(k, fresh)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_build_each_backbone_small(name):
    m, rec = build_classifier(name, 32, weights="none")
    assert rec["label"] == "none (from scratch)"
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    p = np.asarray(m(x))
    assert p.shape == (3, 3) and np.allclose(p.sum(1), 1, atol=1e-4)
    assert not any(l.__class__.__name__ == "Lambda" for l in m.layers)


def test_packaged_model_card_is_portable_and_carries_its_corrections(packaged_clf):
    "The card names weights and data relative to their folders, and holds the margin and the corrections the detector uses."
    from fmd_rice.data import CROP_MARGIN
    clf = packaged_clf[1]
    card = clf.card
    assert card["margin"] == CROP_MARGIN == clf.margin
    text = json.dumps(card)
    assert "/work/" not in text and "/home/" not in text and "/root/" not in text, "absolute path in the card"
    c = clf.corrections
    assert c["box_adjust"] is not None and len(c["box_adjust"]) == 4 and len(c["class_bias"]) == 3 and c["class_bias"][0] == 0.0


def test_training_is_deterministic(data_root, weights_root, tmp_path):
    """Two trainings with one seed (head on degraded features, then fine-tuning) give the same weights: the packaged
    model is what `make paper` writes, so a rerun must give it back. A run started from a trained one (`init_from`,
    as the `fast` classifier starts from the `accurate` one) copies its weights and only fine-tunes."""
    import keras
    from fmd_rice.backbones import train_backbone
    kw = dict(img_size=64, epochs=2, degraded_passes=1, max_per_class=16, max_eval_per_class=8, fine_tune=10,
              fine_tune_epochs=1, weights_dir=weights_root)
    runs = [train_backbone("mobilenet", data_root, tmp_path / f"run{i}", work=tmp_path / f"features{i}", **kw)
            for i in range(2)]
    w = [keras.models.load_model(r["model_path"]).get_weights() for r in runs]
    assert runs[0]["weights"]["source"] == "imagenet" and len(w[0]) == len(w[1])
    assert all(np.array_equal(a, b) for a, b in zip(*w))
    # a smaller classifier started from the first one's weights: no head phase, the frozen layers are the first one's
    small = train_backbone("mobilenet", data_root, tmp_path / "small", work=tmp_path / "features0",
                           **{**kw, "img_size": 48}, init_from=runs[0]["model_path"])
    assert small["config"]["init_from"]["file"] == "mobilenet/model.keras" and small["img_size"] == 48
    assert {h["phase"] for h in small["history"]} == {"fine-tune"} and "started from the weights" in small["mode"]
    # the head was trained by the first run only: the second starts from it (a fresh head would be a random init,
    # about 0.05 away) and moves it by a few small fine-tuning steps
    first, second = (keras.models.load_model(r["model_path"]).get_layer("hidden").get_weights()[0] for r in (runs[0], small))
    assert np.allclose(second, first, atol=1e-3) and not np.array_equal(second, first)
    # `copy_weights` itself: a 48 px network from random weights gets every weight of the 64 px one
    from fmd_rice.backbones import build_classifier, copy_weights
    fresh, _ = build_classifier("mobilenet", 48, weights="none")
    trained = keras.models.load_model(runs[0]["model_path"])
    copy_weights(trained, fresh)
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), trained.get_weights()))

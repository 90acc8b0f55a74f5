"The data chapter: exact counts on the real data, bad files reported not fatal, deterministic leak-free splits, crop geometry."
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fmd_rice.core import CLASSES, DataError, MissingDependencyError
from fmd_rice.data import (CORPUS_COLUMNS, build_corpus, check_data, class_weights, corpus_table, crop_face, crop_faces,
                           dev_split, download_kaggle, group_split, voc_faces, load_kaggle12k, load_kaggle853,
                           load_maskedface, make_dataset, degrade)


# ---------------------------------------------------------------- exact counts on the real data
def test_kaggle853_counts(data_root):
    imgs, issues = load_kaggle853(data_root)
    f = voc_faces(imgs)
    assert len(imgs) == 853 and len(f) == 4072
    assert f.label.value_counts().to_dict() == {"correct_mask": 3232, "no_mask": 717, "incorrect_mask": 123}
    assert issues == []  # the 12 boxes ending at x=401 in 400 px images are within tolerance, clipped
    w = f.stem.map({v.stem: v.width for v in imgs}); h = f.stem.map({v.stem: v.height for v in imgs})
    assert (f.x1 >= 0).all() and (f.y1 >= 0).all() and (f.x2 <= w).all() and (f.y2 <= h).all()
    assert ((f.x2 > f.x1) & (f.y2 > f.y1)).all()
    # maksssksksss0.xml has a stray path pasted after a </bndbox>: its three faces are all there
    assert [x.label for x in imgs[0].faces] == ["no_mask", "correct_mask", "no_mask"] and imgs[0].stem == "maksssksksss0"
    dev, held = dev_split(imgs)
    assert len(dev) == 86 and len(held) == 767
    assert all(int(v.stem[12:]) % 10 == 0 for v in dev) and not set(v.stem for v in dev) & set(v.stem for v in held)


def test_training_sets_counts(data_root):
    k = load_kaggle12k(data_root)
    assert len(k) == 11792
    assert k.groupby(["split", "label"]).size().to_dict() == {
        ("test", "correct_mask"): 483, ("test", "no_mask"): 509, ("train", "correct_mask"): 5000,
        ("train", "no_mask"): 5000, ("val", "correct_mask"): 400, ("val", "no_mask"): 400}
    m = load_maskedface(data_root)
    assert m.label.value_counts().to_dict() == {"incorrect_mask": 765, "correct_mask": 289}
    assert m[m.label == "incorrect_mask"].subtype.value_counts().to_dict() == {"Mask_Mouth_Chin": 680, "Mask_Nose_Mouth": 46, "Mask_Chin": 39}
    assert m.attrs["issues"] == []
    assert m.group.str.fullmatch(r"ffhq:\d{5}").all()


def test_corpus(data_root):
    a, b = build_corpus(data_root, seed=0), build_corpus(data_root, seed=0)
    assert list(a.columns) == CORPUS_COLUMNS and len(a) == 11792 + 1054
    assert a.equals(b)  # same seed, same splits
    assert not a.split.equals(build_corpus(data_root, seed=1).split)
    assert set(a.label) == set(CLASSES) and set(a.split) == {"train", "val", "test"}
    assert not a.path.str.contains("kaggle853").any()  # the evaluation set never enters the corpus
    m = a[a.source == "maskedface-net"]
    assert (m.groupby("group").split.nunique() == 1).all()  # no FFHQ id in two splits
    frac = m.split.value_counts(normalize=True)
    assert 0.6 < frac["train"] < 0.8 and 0.08 < frac["val"] < 0.22 and 0.08 < frac["test"] < 0.22
    t = corpus_table(a)
    assert t.loc["total", "total"] == len(a) and t.loc["incorrect_mask", "total"] == 765
    w = class_weights(a)
    assert set(w) == {0, 1, 2} and w[1] > w[0] and w[1] > w[2]
    n = a[a.split == "train"].label.value_counts()
    assert sum(w[i] * n[c] for i, c in enumerate(CLASSES)) == pytest.approx(n.sum())


def test_group_split_stable_when_data_grows():
    ids = [f"{i:05d}" for i in range(500)]
    s1 = dict(zip(ids, group_split(ids, seed=7)))
    more = ids + [f"{i:05d}" for i in range(500, 900)] + ids[:50]
    s2 = group_split(more, seed=7)
    assert all(s1[g] == s for g, s in zip(more, s2) if g in s1)


def test_check_data_real(data_root):
    r = check_data(data_root, verify_images=False)
    d = r["datasets"]
    assert (d["kaggle853"]["images"], d["kaggle853"]["faces"]) == (853, 4072)
    assert d["kaggle853"]["faces_per_class"] == {"correct_mask": 3232, "incorrect_mask": 123, "no_mask": 717}
    assert d["kaggle12k"]["images"] == 11792
    assert (d["maskedface-net"]["cmfd"], d["maskedface-net"]["imfd"]) == (289, 765)
    assert r["ok"] is True


# ---------------------------------------------------------------- bad files: reported, never fatal
@pytest.fixture
def messy_root(data_root, tmp_path):
    "A data root of a few real files plus a corrupt image, a truncated XML and an XML whose image is missing."
    s = data_root
    k = tmp_path / "kaggle853"; (k / "images").mkdir(parents=True); (k / "annotations").mkdir()
    for n in ("maksssksksss0", "maksssksksss1", "maksssksksss3"):
        shutil.copy(s / "kaggle853/images" / f"{n}.jpg", k / "images")
        shutil.copy(s / "kaggle853/annotations" / f"{n}.xml", k / "annotations")
    xml = (s / "kaggle853/annotations/maksssksksss1.xml").read_text()
    (k / "annotations/maksssksksss1.xml").write_text(xml[: len(xml) // 2])  # truncated XML
    shutil.copy(s / "kaggle853/annotations/maksssksksss2.xml", k / "annotations")  # image missing
    (k / "images/maksssksksss3.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")  # corrupt image
    shutil.copy(s / "kaggle853-original-png/maksssksksss52.png", k / "images")  # original 16-bit RGBA PNG
    shutil.copy(s / "kaggle853/annotations/maksssksksss52.xml", k / "annotations")
    for sp, c in (("Train", "WithMask"), ("Train", "WithoutMask"), ("Validation", "WithMask")):
        d = tmp_path / "kaggle12k" / sp / c; d.mkdir(parents=True)
        for f in sorted((s / "kaggle12k" / sp / c).glob("*.jpg"))[:2]: shutil.copy(f, d)
    (tmp_path / "kaggle12k/Train/WithMask/corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    for sub in ("CMFD", "IMFD"):
        d = tmp_path / "maskedface-net" / sub / "00000"; d.mkdir(parents=True)  # original layout: numbered sub-folders
        for f in sorted((s / "maskedface-net" / sub).glob("*.jpg"))[:3]: shutil.copy(f, d)
    return tmp_path


def test_loaders_report_bad_files(messy_root):
    imgs, issues = load_kaggle853(messy_root)
    assert [v.stem for v in imgs] == ["maksssksksss0", "maksssksksss52"]
    named = {Path(i.path).name: i.reason for i in issues}
    assert set(named) == {"maksssksksss1.xml", "maksssksksss2.xml", "maksssksksss3.jpg"}
    assert "unreadable XML" in named["maksssksksss1.xml"] and "no image" in named["maksssksksss2.xml"]
    assert "unreadable image" in named["maksssksksss3.jpg"]
    assert load_kaggle12k(messy_root).shape[0] == 7  # listed; decoding is check_data's job
    m = load_maskedface(messy_root)
    assert len(m) == 6 and (m.label == "incorrect_mask").sum() == 3
    r = check_data(messy_root)
    assert r["ok"] is False
    assert [Path(i["path"]).name for i in r["datasets"]["kaggle12k"]["issues"]] == ["corrupt.jpg"]
    assert r["datasets"]["kaggle853"]["images"] == 2 and len(r["datasets"]["kaggle853"]["issues"]) == 3


def test_box_outside_image_reported_not_lost(tmp_path):
    k = tmp_path / "kaggle853"; (k / "images").mkdir(parents=True); (k / "annotations").mkdir()
    Image.new("RGB", (100, 80)).save(k / "images/maksssksksss7.png")
    obj = lambda n, b: (f"<object><name>{n}</name><difficult>1</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>")
    (k / "annotations/maksssksksss7.xml").write_text(
        "<annotation><filename>maksssksksss7.png</filename><size><width>100</width><height>80</height></size>"
        + obj("with_mask", (10, 10, 30, 30)) + obj("without_mask", (90, 10, 101, 30))  # 1 px out: silent clip
        + obj("mask_weared_incorrect", (80, 60, 140, 90))  # far out: clipped and reported
        + obj("with_mask", (200, 200, 220, 220)) + "</annotation>")  # no area inside: dropped, reported
    (imgs, issues) = load_kaggle853(tmp_path)
    f = imgs[0].faces
    assert [x.label for x in f] == ["correct_mask", "no_mask", "incorrect_mask"] and f[0].difficult
    assert f[1].box == (90, 10, 100, 30) and f[2].box == (80, 60, 100, 80)
    assert len(issues) == 2 and "clipped" in issues[0].reason and "no area" in issues[1].reason


def test_missing_data_sets_say_where_to_get_them(tmp_path):
    with pytest.raises(DataError, match="andrewmvd/face-mask-detection"): load_kaggle853(tmp_path)
    with pytest.raises(DataError, match="ashishjangra27"): load_kaggle12k(tmp_path)
    with pytest.raises(DataError, match="cabani/MaskedFace-Net"): load_maskedface(tmp_path)
    r = check_data(tmp_path)
    assert r["ok"] is False and not any(d["present"] for d in r["datasets"].values())
    with pytest.raises(DataError, match="unknown data set"): download_kaggle("nope", tmp_path)


def test_original_12k_layout(data_root, tmp_path):
    d = tmp_path / "Face Mask Dataset" / "Test" / "WithoutMask"; d.mkdir(parents=True)
    shutil.copy(next((data_root / "kaggle12k/Test/WithoutMask").glob("*.jpg")), d)
    k = load_kaggle12k(tmp_path)
    assert len(k) == 1 and k.split[0] == "test" and k.label[0] == "no_mask"


# ---------------------------------------------------------------- crops and pipelines
def test_crop_face_geometry():
    yy, xx = np.mgrid[0:100, 0:120]
    img = np.dstack([xx, yy, np.full_like(xx, 7)]).astype(np.uint8)
    c = crop_face(img, (40, 50, 60, 60), margin=0.0)  # 20x10 box -> 20 px square centred at (50, 55)
    assert c.shape == (20, 20, 3) and (c[0, 0, 0], c[0, 0, 1]) == (40, 45) and (c[-1, -1, 0], c[-1, -1, 1]) == (59, 64)
    c = crop_face(img, (40, 40, 60, 60), margin=0.5)
    assert c.shape == (30, 30, 3) and c[0, 0, 0] == 35
    c = crop_face(img, (110, 90, 130, 110), margin=0.0, pad="constant")  # bottom-right corner, mostly outside
    assert c.shape == (20, 20, 3) and c[:10, :10, 2].min() == 7 and c[10:, :, 2].max() == 0 and c[:, 10:, 2].max() == 0
    c = crop_face(img, (110, 90, 130, 110), margin=0.0)  # edge padding repeats the last row/column
    assert c[15, 15, 0] == 119 and c[15, 15, 1] == 99
    assert crop_face(img, (40, 50, 60, 60), size=224).shape == (224, 224, 3)
    big = crop_face(img, (0, 0, 100, 100), margin=0.0, size=10)
    assert big.shape == (10, 10, 3) and abs(int(big[0, 9, 0]) - 95) <= 1  # INTER_AREA averages 90..99
    assert crop_faces(img, [(0, 0, 5, 5)] * 3, size=16).shape == (3, 16, 16, 3)


def test_make_dataset_and_degrade(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from skimage import data as skdata
    paths = []
    for i, a in enumerate([skdata.astronaut(), skdata.chelsea()]):
        p = tmp_path / f"{i}.png"; Image.fromarray(a).save(p); paths.append(p)
    ds = make_dataset((paths, ["incorrect_mask", 2]), 32, batch_size=2)
    x, y = next(iter(ds))
    assert x.shape == (2, 32, 32, 3) and y.numpy().tolist() == [1, 2] and x.dtype == tf.float32
    ds = make_dataset((paths, [0, 1]), 32, batch_size=1, augment=True, shuffle=True, seed=5, cache=True)
    assert sum(1 for _ in ds) == 2
    d = degrade(tf.constant(skdata.astronaut()[:200, :200], tf.float32), 8, 8, seed=[0, 1])
    assert d.shape == (200, 200, 3)
    # shrunk to 8 px: neighbouring pixels barely differ any more
    assert float(tf.reduce_mean(tf.abs(d[1:] - d[:-1]))) < 2.0


def test_make_dataset_degrades_each_row_with_its_probability(tmp_path):
    """A corpus's `degrade` column is each row's probability of degradation when augmenting (`crowd_corpus(degrade_p=...)`),
    scaled by `make_dataset`'s `degrade_p`. One seed gives every row the same augmentation draw in every run, so a row
    comes out identical to the never-degraded run exactly when it was not degraded."""
    pytest.importorskip("tensorflow")
    from skimage import data as skdata
    p = tmp_path/"face.png"
    Image.fromarray(skdata.astronaut()[40:200, 150:310]).save(p)  # the astronaut's face
    def run(deg, degrade_p=1.0):
        rows = pd.DataFrame({"path": [str(p)] * len(deg), "label": "no_mask", "degrade": deg})
        ds = make_dataset(rows, 64, batch_size=32, augment=True, degrade_p=degrade_p, seed=3)
        return np.concatenate([x.numpy() for x, _ in ds])
    never = run([0.0] * 80)
    untouched = lambda x: np.abs(x - never).max(axis=(1, 2, 3)) == 0
    same = untouched(run([0.0] * 20 + [1.0] * 20 + [0.5] * 40))
    assert same[:20].all() and not same[20:40].any()  # probability 0: never degraded; 1: always
    assert 0.3 < same[40:].mean() < 0.7  # 0.5: about half (0.5 with this seed)
    assert 0.3 < untouched(run([1.0] * 80, degrade_p=0.5)).mean() < 0.7  # the argument scales the column


def test_ilc2021_loader_split_and_check(data_root):
    "ILC 2021 through the one VOC path: counts, its own label names, a split by photo with val/test on reviewed photos."
    from fmd_rice.data import ilc_split, load_ilc2021, voc_faces
    if not (data_root/"ilc2021").is_dir(): pytest.skip("ilc2021 not in the data root")
    imgs, issues = load_ilc2021(data_root)
    assert len(imgs) == 1523 and sum(len(v.faces) for v in imgs) == 3847
    assert [i.reason.endswith("clipped") for i in issues] == [True]  # one box 9 px out of its image
    f = voc_faces(imgs)
    assert f.label.value_counts().to_dict() == {"correct_mask": 1859, "no_mask": 1516, "incorrect_mask": 472}
    sp = ilc_split(imgs)
    assert set(sp.values()) == {"train", "val", "test"} and sp == ilc_split(imgs)
    assert all(sp[v.stem] == "train" for v in imgs if v.branch == "contrib")
    r = check_data(data_root, verify_images=False)
    d = r["datasets"]["ilc2021"]
    assert d["present"] and d["faces"] == 3847 and d["branches"] == {"main": 1179, "contrib": 344}
    assert sum(s["photos"] for s in d["per_split"].values()) == 1523


def test_load_voc_either_label_names(tmp_path):
    "One VOC folder may use Kaggle 853's or ILC 2021's names; unknown names are reported, not fatal."
    from fmd_rice.data import load_voc
    (tmp_path/"images").mkdir(); (tmp_path/"annotations").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path/"images"/"a.jpg")
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>"
                   for n in ("with_incorrect_mask", "mask_weared_incorrect", "without_mask", "hat"))
    (tmp_path/"annotations"/"a.xml").write_text(f"<annotation><size><width>64</width><height>48</height></size>{objs}</annotation>")
    imgs, issues = load_voc(tmp_path)
    assert [f.label for f in imgs[0].faces] == ["incorrect_mask", "incorrect_mask", "no_mask"]
    assert len(issues) == 1 and "unknown label 'hat'" in issues[0].reason

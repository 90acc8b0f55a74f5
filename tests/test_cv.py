"The Kaggle 853 cross-validation: folds by image on the real set, its corpus's degradation, and its paper step end to end on the smoke profile."
import pandas as pd
import pytest

from fmd_rice.data import cv_folds, dev_split, load_kaggle853
from fmd_rice.reproduce import reproduce


def test_folds_are_disjoint_by_image_and_cover_kaggle853(data_root):
    images, _ = load_kaggle853(data_root)
    folds = cv_folds(images)
    assert len(images) == 853 and sorted(folds) == sorted(v.stem for v in images)  # every image, exactly once
    sizes = pd.Series(folds).value_counts()
    assert sorted(sizes.index) == [0, 1, 2, 3, 4] and sizes.max() - sizes.min() <= 1
    faces = {k: sum(len(v.faces) for v in images if folds[v.stem] == k) for k in range(5)}
    assert sum(faces.values()) == 4072 and min(faces.values()) > 600
    dev, _ = dev_split(images)
    assert {folds[v.stem] for v in dev} == {0, 1, 2, 3, 4}  # the dev part is spread over every fold
    assert cv_folds(images[::-1]) == folds  # the order the loader gives does not matter


@pytest.mark.reproduction
def test_cv_step_runs_on_the_smoke_profile(data_root, tmp_path):
    m = reproduce("smoke", data=data_root, out=tmp_path / "run", only=["cv"], progress=False)
    assert m["steps"]["cv"]["status"] == "ok" and "detectors" not in m["steps"]
    table = pd.read_csv(tmp_path / "run" / "figures" / "cv_kaggle853.csv")
    assert table.detector.tolist()[:6] == ["fmd_rice, 5-fold CV"] + [f"fmd_rice, CV fold {k}" for k in range(5)]
    assert table.images[0] == 20 and table.images[1:6].astype(int).sum() == 20  # each image in one held-out fold
    assert table.map50_multilabel.notna().all() and table.map50_multilabel.iloc[-1] == 0.89  # the published YOLOv8m row
    work = tmp_path / "run" / "work" / "cv" / "smoke"
    files = ("fold.json", "predictions.json", "model.keras")
    assert all((work / f"fold{k}" / f).is_file() for k in range(5) for f in files)
    m2 = reproduce("smoke", data=data_root, out=tmp_path / "run", only=["cv"], progress=False)
    assert m2["steps"]["cv"]["status"] == "skipped"


def test_cv_corpus_degrades_every_own_size_crop_with_degrade_p(data_root, tmp_path):
    """The cross-validation trains as the shipped classifier does: web crops and the ILC 2021 and Kaggle 853 faces at
    their own size carry `degrade_p` as their degradation probability; crowd-scale crops are never degraded again."""
    from fmd_rice.backbones import cv_corpus
    images = load_kaggle853(data_root)[0][:3]
    df = cv_corpus(data_root, tmp_path / "crowd", images=images, per_face=1, limit=2, degrade_p=0.5)
    k853 = df[df.source == "kaggle853"]
    assert len(k853) == 2 * sum(len(v.faces) for v in images)  # each face at its own size and at one crowd size
    for src, rows in df.groupby("source"):
        assert set(rows.degrade.unique()) <= {0.0, 0.5}, src
    assert k853.degrade.eq(0.5).sum() == sum(len(v.faces) for v in images)  # one own-size crop per face
    assert df[df.source == "ilc2021"].degrade.eq(0.5).any() and df[df.source == "kaggle12k"].degrade.eq(0.5).all()
    assert df.attrs["degrade_p"] == 0.5

"RetinaFace on real photos: the astronaut, and the original 16-bit/8-bit RGBA PNGs of Kaggle 853."
import numpy as np
from skimage import data as skdata

from fmd_rice.faces import Face, find_faces
from fmd_rice.images import read_image


def test_astronaut_one_face():
    faces = find_faces(skdata.astronaut())
    assert len(faces) == 1
    f = faces[0]
    assert np.abs(np.array(f.box) - [177, 60, 270, 181]).max() <= 5
    x1, y1, x2, y2 = f.box
    assert ((f.landmarks[:, 0] > x1) & (f.landmarks[:, 0] < x2)).all()
    assert ((f.landmarks[:, 1] > y1) & (f.landmarks[:, 1] < y2)).all()
    assert f.score > 0.9
    assert Face.from_dict(f.to_dict()).box == tuple(round(v, 2) for v in f.box)


def test_original_pngs_load_and_give_faces(data_root):
    files = sorted((data_root / "kaggle853-original-png").glob("*.png"))
    assert len(files) == 6
    for p in files:
        img = read_image(p)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        faces = find_faces(img, long_side=1024)
        assert faces, f"no face found in {p.name}"
        h, w = img.shape[:2]
        for f in faces:
            assert 0 <= f.box[0] < f.box[2] <= w and 0 <= f.box[1] < f.box[3] <= h


def test_graph_nms_parity_on_a_crowd_photo(data_root):
    "At the graph's own 0.5 cut, our NMS over the decoded anchors gives exactly the graph's faces on a crowd photo."
    from fmd_rice.data import load_kaggle853
    from fmd_rice.faces import FaceFinder, _graph_rows, load_retinaface_anchors, nms
    import tensorflow as tf
    imgs, _ = load_kaggle853(data_root)
    v = next(v for v in imgs if v.stem == "maksssksksss240")   # 61 faces, most under 16 px
    x, _ = FaceFinder(long_side=960).prepare(read_image(v.path))
    graph = _graph_rows(x, 0.5)
    rows = load_retinaface_anchors()(tf.constant(x)).numpy()
    rows = rows[rows[:, 15] >= 0.5]
    rows = rows[nms(rows[:, :4], rows[:, 15])]
    assert len(graph) == len(rows) > 40
    order = lambda a: a[np.lexsort((a[:, 0], -a[:, 15]))]
    assert np.abs(order(graph) - order(rows)).max() < 1e-5


def test_small_face_options_find_more_faces(data_root):
    "Each small-face option finds more of a crowd photo's annotated faces than today's `accurate`; tiles about as many as a whole enlarged pass."
    from fmd_rice.data import load_kaggle853
    from fmd_rice.faces import FaceFinder, match
    imgs, _ = load_kaggle853(data_root)
    v = next(v for v in imgs if v.stem == "maksssksksss410")   # 21 faces; today's `accurate` finds 15
    img, gt = read_image(v.path), [f.box for f in v.faces]
    h, w = img.shape[:2]
    adjust = (1.1, 1.0, 0.0, 0.15)   # the packaged classifier's box convention for Kaggle 853
    def matched(**opts):
        faces = FaceFinder(long_side=960, box_adjust=adjust, **opts)(img)
        for f in faces:
            assert 0 <= f.box[0] < f.box[2] <= w and 0 <= f.box[1] < f.box[3] <= h
            assert np.isfinite(f.landmarks).all()
        return len(match(gt, [f.box for f in faces], [f.score for f in faces]).pairs)
    today = matched()
    whole = matched(scales=(2.0,))
    for opts in (dict(score=0.4), dict(scales=(2.0,), refine=40), dict(scales=(2.0,), tile=640, refine=40)):
        assert matched(**opts) > today, opts
    assert whole > today and abs(matched(scales=(2.0,), tile=640) - whole) <= 1

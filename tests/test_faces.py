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

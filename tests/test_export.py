"""`fmd_rice.runtime.export_models` (`fmd-rice export`) in each format, on real photos: every exported file loads in its
own runtime and matches TensorFlow (face rows within 1 px, class probabilities within 1e-3), the card's sha256s are
the files', and the one-page `example.py` runs without `fmd_rice` and finds what `MaskDetector` finds."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from fmd_rice.runtime import EXPORT_FORMATS, export_models, sha256_file

RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "tensorflow"}


def _photos(data_root, n=5):
    from fmd_rice.images import read_image
    paths = sorted((data_root / "kaggle853" / "images").glob("*.jpg"))[::140][:n]
    if not paths: pytest.skip(f"no Kaggle 853 photos under {data_root}")
    return paths, [read_image(p) for p in paths]


@pytest.fixture(scope="module")
def classifier():
    from fmd_rice.backbones import load_classifier
    return load_classifier(backend="tensorflow")


@pytest.fixture(scope="module", params=EXPORT_FORMATS)
def exported(request, tmp_path_factory, classifier):
    fmt = request.param
    needs = {"onnx": ("tf2onnx", "onnxruntime"), "openvino": ("openvino",), "tflite": ()}[fmt]
    for mod in needs:
        if importlib.util.find_spec(mod) is None: pytest.skip(f"{fmt} export needs {mod}")
    from fmd_rice.faces import retinaface_graph_path
    out = tmp_path_factory.mktemp(f"export_{fmt}")
    card = export_models(fmt, out, retinaface_graph_path(), classifier.model, classifier.card, long_side=640)
    return fmt, out, card


def _example(out):
    "The exported folder's own `example.py`, imported: its `find` and `classify` run the files in their runtime."
    spec = importlib.util.spec_from_file_location(f"example_{out.name}", out / "example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_card_lists_each_file_with_its_sha256(exported):
    fmt, out, card = exported
    assert json.loads((out / "card.json").read_text()) == card and card["format"] == fmt
    for part in ("face_finder", "classifier"):
        assert card[part]["files"] and card[part]["inputs"] and card[part]["outputs"] and card[part]["preprocessing"]
        for f in card[part]["files"]:
            assert card[part]["sha256"][f] == sha256_file(out / f)
    assert card["classifier"]["classes"] == ["correct_mask", "incorrect_mask", "no_mask"]
    assert (out / "example.py").is_file() and (out / "README.md").is_file()


def test_exported_files_match_tensorflow(exported, classifier, data_root):
    import tensorflow as tf
    from fmd_rice.data import crop_faces
    from fmd_rice.faces import FaceFinder, load_retinaface, nms
    fmt, out, card = exported
    example = _example(out)
    face, clf = example.find, example.classify
    ref_fn, finder, crops = load_retinaface("tensorflow"), FaceFinder(long_side=640), []
    for img in _photos(data_root)[1]:
        x = finder.prepare(img)[0]
        ref = ref_fn(tf.constant(x)).numpy()
        rows = face(x)
        rows = rows[rows[:, 15] >= 0.5]
        rows = rows[nms(rows[:, :4], rows[:, 15])]  # as the card says (a no-op for ONNX and OpenVINO)
        assert rows.shape == ref.shape
        px = np.array([x.shape[2], x.shape[1]] * 7)
        assert np.abs((rows[:, :14] - ref[:, :14]) * px).max(initial=0) < 1.0
        assert np.abs(rows[:, 15] - ref[:, 15]).max(initial=0) < 1e-3
        crops.append(crop_faces(img, [f.box for f in finder(img)], margin=classifier.margin, size=classifier.img_size))
    crops = np.concatenate(crops).astype(np.float32)
    assert len(crops) >= 5
    want = classifier.predict(crops)
    for b in (crops[:1], crops):
        assert np.abs(clf(b) - want[:len(b)]).max() < 1e-3


def test_example_runs_without_fmd_rice(exported, classifier, data_root):
    from fmd_rice.detector import MaskDetector
    fmt, out, card = exported
    path, img = _photos(data_root, 1)[0][0], _photos(data_root, 1)[1][0]
    block = "import sys, runpy; sys.modules['fmd_rice'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    r = subprocess.run([sys.executable, "-c", block, str(out / "example.py"), str(path), "640"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    want = MaskDetector(classifier, preset="fast", long_side=640)(img)  # one pass, as example.py runs
    assert len(got) == len(want) >= 1
    for g, w in zip(got, want):
        assert np.abs(np.subtract(g["box"], w.box)).max() < 1.0 and g["label"] == w.label


def test_cli_export(tmp_path, capsys):
    if importlib.util.find_spec("openvino") is None: pytest.skip("needs openvino")
    from fmd_rice.cli import main
    assert main(["export", "--format", "openvino", "--out", str(tmp_path / "ov"), "--preset", "fast", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card == json.loads((tmp_path / "ov" / "card.json").read_text())
    assert card["face_finder"]["long_side"] == 480 and card["classifier"]["img_size"] == 64  # the fast preset's own classifier
    assert card["face_finder"]["small_faces"] == {}
    with pytest.raises(SystemExit):  # argparse refuses an unknown format before anything loads
        main(["export", "--format", "coreml", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()

"""The one loader of model files, on the real files: each verifies against the sha256 the package records, a changed
copy is refused, a crafted graph that copies a file is refused even with the hash check overridden, wrong-shaped
classifiers are refused, and the CLI says so in one line."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fmd_rice.backbones import ModelError, load_classifier
from fmd_rice.core import MissingDependencyError
from fmd_rice.faces import retinaface_graph_path
from fmd_rice.peers import AIZOO_FILE, AIZOO_INPUT, AIZOO_OUTPUTS, FMD_FILES, AizooDetector, fmd_files, peer_file
from fmd_rice.runtime import (ENV_TRUSTED, GRAPH_OPS, MODEL_FILES, graph_ops, load_graph, parse_graph, sha256_file,
                              verify_file)


def _real_file(name, request):
    "Where the package finds registry file `name` (skipped with the reason when it is absent)."
    try:
        if name == "retinaface": return retinaface_graph_path()
        if name in FMD_FILES: return fmd_files()[FMD_FILES.index(name)]
    except MissingDependencyError as e:
        pytest.skip(str(e))
    return peer_file(MODEL_FILES[name].path, request.getfixturevalue("peers_root"))


@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_real_file_verifies(name, request):
    p = _real_file(name, request)
    assert len(verify_file(p, name)) == p.stat().st_size
    assert sha256_file(p) == MODEL_FILES[name].sha256


@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_changed_copy_refused(name, request, tmp_path):
    b = bytearray(_real_file(name, request).read_bytes())
    b[len(b) // 2] ^= 0x01
    copy = tmp_path / MODEL_FILES[name].path.rsplit("/", 1)[-1]
    copy.write_bytes(bytes(b))
    with pytest.raises(ModelError) as e:
        verify_file(copy, name)
    msg = str(e.value)
    assert str(copy) in msg and MODEL_FILES[name].sha256 in msg and sha256_file(copy) in msg, msg
    assert "verify=False" in msg and ENV_TRUSTED in msg and "\n" not in msg
    assert verify_file(copy, name, verify=False) == bytes(b)


def test_allowlist_is_what_the_real_graphs_use(peers_root):
    ops = {}
    for name, p in (("retinaface", retinaface_graph_path()), ("aizoo", peer_file(AIZOO_FILE, peers_root))):
        ops[name] = set(graph_ops(parse_graph(verify_file(p, name), p)))
        assert ops[name] <= GRAPH_OPS, ops[name] - GRAPH_OPS
    assert ops["retinaface"] | ops["aizoo"] == GRAPH_OPS


def _copying_graph(secret, target)->bytes:
    "AIZOO's input and output names, but a graph that copies `secret` to `target` when it runs."
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 260, 260, 3], name=AIZOO_INPUT.split(":")[0])
        with tf.control_dependencies([tf.io.write_file(str(target), tf.io.read_file(str(secret)))]):
            for out in AIZOO_OUTPUTS: tf.identity(x, name=out.split(":")[0])
    return g.as_graph_def().SerializeToString()


def test_crafted_file_copying_graph_refused(tmp_path, monkeypatch):
    secret, target = tmp_path / "secret.txt", tmp_path / "copy.txt"
    secret.write_text("secret")
    pb = tmp_path / "peers" / AIZOO_FILE
    pb.parent.mkdir(parents=True)
    pb.write_bytes(_copying_graph(secret, target))
    with pytest.raises(ModelError, match="does not match"):
        AizooDetector(peers_root=tmp_path / "peers")
    monkeypatch.setenv(ENV_TRUSTED, str(pb))  # the hash check overridden: the op check still refuses
    with pytest.raises(ModelError, match="ReadFile, WriteFile"):
        AizooDetector(peers_root=tmp_path / "peers")
    with pytest.raises(ModelError, match="never loaded, whatever its hash"):
        load_graph(pb, AIZOO_INPUT, AIZOO_OUTPUTS, verify=False, allow_ops=("ReadFile", "WriteFile"))
    assert not target.exists()


def _save_model(path, shape=(16, 16, 3), n=3):
    import keras
    inp = keras.Input(shape)
    x = keras.layers.GlobalAveragePooling2D()(inp)
    keras.Model(inp, keras.layers.Dense(n, activation="softmax")(x)).save(path)
    return path


@pytest.mark.parametrize("shape,n,found", [((16, 16, 3), 5, "found [batch, 5]"),
                                           ((16, 16, 1), 3, "found [batch, 16, 16, 1]"),
                                           ((None, None, 3), 3, "found [batch, ?, ?, 3]")])
def test_load_classifier_refuses_wrong_shapes(tmp_path, shape, n, found):
    p = _save_model(tmp_path / "m.keras", shape, n)
    with pytest.raises(ModelError) as e:
        load_classifier(p)
    msg = str(e.value)
    assert str(p) in msg and found in msg and "expected one" in msg and "\n" not in msg, msg
    ok = load_classifier(_save_model(tmp_path / "ok.keras"))
    assert ok.predict(np.zeros((2, 20, 20, 3), np.uint8)).shape == (2, 3)


@pytest.mark.parametrize("kind,reason", [("text", "not a Keras model file (not a zip archive)"),
                                         ("five", "found [batch, 5]")])
def test_cli_classify_bad_model_one_line(tmp_path, kind, reason):
    from fmd_rice.images import save_image
    bad = tmp_path / "bad.keras"
    if kind == "text": bad.write_text("this is not a model\n")
    else: _save_model(bad, n=5)
    img = save_image(tmp_path / "x.jpg", np.full((24, 24, 3), 128, np.uint8))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cli = "import sys\nfrom fmd_rice.cli import main\nsys.exit(main())"
    r = subprocess.run([sys.executable, "-c", cli, "classify", "--model", str(bad), str(img)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("fmd-rice classify:")]
    assert len(lines) == 1 and str(bad) in lines[0] and reason in lines[0] and len(lines[0]) < 300, r.stderr
    assert "File not found" not in r.stderr and "config" not in r.stderr


# The optimised runtime (OpenVINO) against TensorFlow, on real photos, at full precision: boxes within 1 px,
# class probabilities within 1e-3; and the fallback to TensorFlow with its one message.
import warnings

from fmd_rice import runtime
from fmd_rice.runtime import ENV_BACKEND, FALLBACK_MESSAGE, OpenVinoFunction, openvino_available

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="OpenVINO is not installed")


def _photos(data_root, n=6):
    "Every 140th Kaggle 853 photo: sizes from 225 to 400 px high, 0 to 20 faces."
    from fmd_rice.images import read_image
    paths = sorted((data_root / "kaggle853" / "images").glob("*.jpg"))[::140][:n]
    if not paths: pytest.skip(f"no Kaggle 853 photos under {data_root}")
    return [read_image(p) for p in paths]


@needs_openvino
@pytest.mark.parametrize("long_side,upscale", [(640, False), (960, True)])
def test_openvino_retinaface_parity(data_root, monkeypatch, long_side, upscale):
    import tensorflow as tf
    from fmd_rice.faces import FaceFinder, load_retinaface
    ov_fn, tf_fn = load_retinaface("openvino", "f32"), load_retinaface("tensorflow")
    assert isinstance(ov_fn, OpenVinoFunction) and ov_fn.precision == "f32"
    finder, n_faces = FaceFinder(long_side=long_side, upscale=upscale), 0
    for img in _photos(data_root):
        x = finder.prepare(img)[0]
        ref = tf_fn(tf.constant(x)).numpy()
        for _ in range(2):  # first the dynamic-shape model, then the one compiled for this shape
            out = ov_fn(tf.constant(x)).numpy()
            assert out.shape == ref.shape
            px = np.array([x.shape[2], x.shape[1]] * 7)
            assert np.abs((out[:, :14] - ref[:, :14]) * px).max(initial=0) < 1.0
            assert np.abs(out[:, 15] - ref[:, 15]).max(initial=0) < 1e-3
        monkeypatch.setenv(ENV_BACKEND, "tensorflow")
        want = finder(img)
        monkeypatch.setenv(ENV_BACKEND, "openvino")
        got = finder(img)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert np.abs(np.subtract(a.box, b.box)).max() < 1.0 and abs(a.score - b.score) < 1e-3
        n_faces += len(want)
    assert n_faces >= 10  # the photos hold faces to compare


@needs_openvino
def test_openvino_classifier_parity(data_root):
    from fmd_rice.backbones import load_classifier
    from fmd_rice.data import crop_faces
    from fmd_rice.faces import FaceFinder
    ov_clf, tf_clf = load_classifier(backend="openvino", precision="f32"), load_classifier(backend="tensorflow")
    assert isinstance(ov_clf._fn, OpenVinoFunction) and not isinstance(tf_clf._fn, OpenVinoFunction)
    finder = FaceFinder(long_side=960)
    crops = np.concatenate([crop_faces(img, [f.box for f in finder(img)], margin=tf_clf.margin, size=tf_clf.img_size)
                            for img in _photos(data_root)])
    assert len(crops) >= 10
    want = tf_clf.predict(crops)
    for batch in (crops[:1], crops[:8], crops):
        assert np.abs(ov_clf.predict(batch) - want[:len(batch)]).max() < 1e-3
    assert (ov_clf.predict(crops).argmax(1) == want.argmax(1)).all()


def test_backend_forced_to_tensorflow_and_fallback_message(monkeypatch):
    import tensorflow as tf
    from fmd_rice.faces import FaceFinder, load_retinaface
    from skimage import data as skdata
    img = skdata.astronaut()
    monkeypatch.setenv(ENV_BACKEND, "tensorflow")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forced = load_retinaface()
        want = [f.box for f in FaceFinder()(img)]
    assert not isinstance(forced, OpenVinoFunction) and len(want) == 1
    assert not [w for w in caught if "OpenVINO" in str(w.message)]  # a forced backend says nothing
    monkeypatch.delenv(ENV_BACKEND)
    monkeypatch.setattr(runtime, "openvino_available", lambda: False)  # as if OpenVINO were not installed
    monkeypatch.setattr(runtime, "_said", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback = load_retinaface()
        got = [f.box for f in FaceFinder()(img)]
        load_retinaface()
    assert [str(w.message) for w in caught] == [FALLBACK_MESSAGE]  # one message, once per process
    assert "pip install 'openvino" in FALLBACK_MESSAGE and ENV_BACKEND in FALLBACK_MESSAGE
    assert fallback is forced and got == want
    assert isinstance(fallback(tf.constant(np.zeros((1, 64, 64, 3), np.float32))), tf.Tensor)
    with pytest.raises(MissingDependencyError, match="pip install 'openvino"):
        load_retinaface("openvino")

"The Ray engine on real Kaggle 853 photos: the local engine's answers, bad files, a second run, a kill and a resume."
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason='the Ray engine needs the extra: pip install "fmd_rice[ray]"')
pq = pytest.importorskip("pyarrow.parquet")

from fmd_rice.batch import PARQUET_DIR, load_results, read_parquet  # noqa: E402
from fmd_rice.cli import main  # noqa: E402
from fmd_rice.distributed import detect_dataset, start_ray  # noqa: E402
from fmd_rice.evaluation import score_run  # noqa: E402
from fmd_rice.runtime import ENV_PRECISION  # noqa: E402

FMD_RICE = str(Path(sys.executable).parent / "fmd-rice")  # the console script of this environment
PRESET = "fast"  # the engines are compared, not the presets: the quicker one keeps the suite short


@pytest.fixture(scope="module")
def photos(data_root):
    "30 Kaggle 853 photos."
    imgs = sorted((data_root / "kaggle853" / "images").glob("*.*"), key=lambda p: (len(p.stem), p.stem))[:30]
    if len(imgs) < 30:
        pytest.skip(f"Kaggle 853 has {len(imgs)} photos under {data_root}")
    return imgs


@pytest.fixture(scope="module")
def inputs(photos, tmp_path_factory):
    "A folder of the 30 photos, one unreadable file and a 12-frame video made from six of them."
    d = tmp_path_factory.mktemp("inputs")
    for p in photos:
        (d / p.name).symlink_to(p)
    (d / "unreadable.jpg").write_bytes(b"these bytes are not a photo")
    vw = cv2.VideoWriter(str(d / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (400, 300))
    for p in photos[:6]:
        frame = cv2.resize(cv2.imread(str(p)), (400, 300))
        vw.write(frame)
        vw.write(frame)
    vw.release()
    return d


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance of 2 CPUs on loopback, shut down after the tests, everything at full precision (f32).

    The engines are compared where they must agree to 1e-5. In bf16 (where `fmd_rice.detector.CLASSIFIER_PRECISION`
    or the environment asks for it) a face's probabilities move by up to about 1e-3 with the photos a
    process saw before: OpenVINO's model compiled for a batch shape and its dynamic-shape model, which runs until then
    (`fmd_rice.runtime.OpenVinoFunction`), round differently, and each Ray actor sees half the photos. The actors and
    the `fmd-rice` subprocesses inherit this environment."""
    old = os.environ.get(ENV_PRECISION)
    os.environ[ENV_PRECISION] = "f32"
    try:
        assert start_ray(num_cpus=2)  # loopback only (`LOCAL_ENV`); tried again if Ray is slow to start
        yield ray
        ray.shutdown()
    finally:
        if old is None: os.environ.pop(ENV_PRECISION, None)
        else: os.environ[ENV_PRECISION] = old


def _by_source(found):
    return {it["source"]: it["detections"] for it in found}


def _parts(out):
    return sorted(p.name for p in (out / PARQUET_DIR).rglob("*.parquet"))


def _physical_inputs(out):
    "Every input row of every part file: (key, first_frame) -> how many rows."
    rows = [r for p in (out / PARQUET_DIR / "inputs").glob("*.parquet")
            for r in pq.read_table(p, columns=["key", "first_frame"]).to_pylist()]
    return Counter((r["key"], r["first_frame"]) for r in rows)


def test_ray_gives_the_local_answers(inputs, tmp_path, local_ray, data_root):
    local = tmp_path / "local"
    assert main(["detect", str(inputs), "--out", str(local), "--preset", PRESET, "--no-images", "--every", "3"]) == 0
    want = _by_source(load_results(local))
    local_summary = json.loads((local / "detections.json").read_text())

    out = tmp_path / "ray"
    s = detect_dataset([str(inputs)], out, preset=PRESET, workers=2, batch_size=4, every=3, video_chunk=6)
    assert s["timing"]["workers"] == 2 and s["timing"]["threads"] == 1
    assert (s["inputs"], s["images"]) == (local_summary["inputs"], local_summary["images"]) == (32, 34)
    assert s["by_class"] == local_summary["by_class"] and s["faces"] > 60
    faces, rows = read_parquet(out / PARQUET_DIR)
    assert sorted(r["first_frame"] for r in rows.to_pylist() if r["kind"] == "video") == [0, 6]  # two frame ranges
    assert set(faces.column("model_sha256").to_pylist()) == {s["model_sha256"]} and len(s["model_sha256"]) == 64

    got = _by_source(load_results(out))
    assert sorted(got) == sorted(want)
    for source, dets in want.items():
        assert len(got[source]) == len(dets), source
        for a, b in zip(dets, got[source]):
            assert a["label"] == b["label"], source
            np.testing.assert_allclose(a["box"], b["box"], atol=0.01, err_msg=source)
            np.testing.assert_allclose([a["probs"][c] for c in a["probs"]], [b["probs"][c] for c in a["probs"]],
                                       atol=1e-5, err_msg=source)
            assert abs(a["score"] - b["score"]) <= 1e-5, source

    # the bad file is a row with its reason: the one the local engine gives
    bad = [r for r in rows.to_pylist() if r["status"] != "ok"]
    assert [(Path(r["path"]).name, r["stage"], r["error"]) for r in bad] == \
        [(Path(e["path"]).name, e["stage"], e["error"]) for e in local_summary["errors"]] == \
        [("unreadable.jpg", "read", "not an image (unrecognised format)")]

    # a finished run of either engine is scored without running a detector, with the same numbers
    voc = data_root / "kaggle853"
    assert main(["evaluate", "--predictions", str(out), "--data", str(voc), "--out", str(tmp_path / "m"), "--json"]) == 0
    m_ray, m_local = json.loads((tmp_path / "m" / "metrics.json").read_text()), score_run(local / "detections.json", voc)
    assert (m_ray["images"], m_ray["images_missing"]) == (m_local["images"], m_local["images_missing"]) == (30, 823)
    for k in ("map50", "map50_multilabel", "face_recall", "face_accuracy", "paper_accuracy"):
        assert abs(m_ray[k] - m_local[k]) < 1e-6, k

    # a second run adds nothing: every input is reused, the bad one fails again alike and is not written again
    before = _parts(out)
    again = detect_dataset([str(inputs)], out, preset=PRESET, workers=2, batch_size=4, every=3, video_chunk=6)
    assert (again["done_before"], again["todo"]) == (32, 1)
    assert _parts(out) == before
    assert {k: again[k] for k in ("inputs", "images", "faces", "by_class")} == \
        {k: s[k] for k in ("inputs", "images", "faces", "by_class")}
    assert set(_physical_inputs(out).values()) == {1}


def test_a_killed_run_resumes_without_duplicates(photos, tmp_path, local_ray):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in photos[:16]:
        (folder / p.name).symlink_to(p)
    out = tmp_path / "out"
    # the job's driver is `fmd-rice detect` in a process of its own, joined to this test's instance (on loopback)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cmd = [FMD_RICE, "detect", str(folder), "--out", str(out), "--engine", "ray", "--workers", "1",
           "--address", ray.get_runtime_context().gcs_address, "--batch-size", "2", "--preset", PRESET, "--no-images"]
    log = open(tmp_path / "killed.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / PARQUET_DIR / "inputs").glob("part-*.parquet"))) >= 2:
                break
            time.sleep(0.1)
        ended = proc.poll() is not None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver: Ray then ends the job's actors
        proc.wait()
        log.close()
    assert not ended, f"the run ended before it was killed: {(tmp_path / 'killed.log').read_text()[-2000:]}"
    killed = _physical_inputs(out)
    assert 0 < len(killed) < 16, (tmp_path / "killed.log").read_text()[-2000:]

    s = detect_dataset([str(folder)], out, preset=PRESET, workers=2, batch_size=2)
    assert (s["done_before"], s["todo"]) == (len(killed), 16 - len(killed))
    rows = _physical_inputs(out)
    assert len(rows) == 16 and set(rows.values()) == {1}  # the set completed, no input written twice
    assert s["inputs"] == s["images"] == 16 and not s["errors"]
    assert not list(out.rglob("*.tmp*"))

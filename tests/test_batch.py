"Batch running with the real detector: a corpus of bad inputs, resume keys, permissions, Ctrl-C, COCO output, lost work."
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fmd_rice.batch import detect_paths, load_record
from fmd_rice.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, main
from fmd_rice.detector import MaskDetector, demo_photo

FMD_RICE = str(Path(sys.executable).parent / "fmd-rice")  # the console script of this environment
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def detector():
    return MaskDetector(preset="fast")


@pytest.fixture(scope="module")
def photos():
    "The demo photo (three faces) and its first tile (one face)."
    img, _ = demo_photo()
    return img, np.ascontiguousarray(img[:, : img.shape[1] // 3])


def _save(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def _faces_by_name(out):
    "detections.json of `out`: file name of each item's source -> number of faces."
    d = json.loads((out / "detections.json").read_text())
    return {Path(it["source"]).name: len(it["detections"]) for it in d["items"]}


def _bad_crc_png():
    b = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(b, "PNG")
    bad = bytearray(b.getvalue())
    bad[29] ^= 0xFF  # the IHDR chunk's CRC
    return bytes(bad)


def _video(path, img, n=4):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (img.shape[1], img.shape[0]))
    for _ in range(n):
        vw.write(np.ascontiguousarray(img[:, :, ::-1]))
    vw.release()


# --- resume: records are keyed by the resolved path, checked by size and time --------------------------------------

def test_same_stem_in_two_folders_is_two_inputs(tmp_path, detector, photos):
    three, one = photos
    out = tmp_path / "o"
    detect_paths(detector, [_save(tmp_path / "A" / "photo.jpg", three)], out)
    assert _faces_by_name(out) == {"photo.jpg": 3}
    detect_paths(detector, [_save(tmp_path / "B" / "photo.jpg", one)], out)
    assert _faces_by_name(out) == {"photo.jpg": 1}  # B's own face, not A's record
    rec = [load_record(p) for p in (out / "records").glob("*.json")]
    assert sorted(r["key"] for r in rec) == [str((tmp_path / d / "photo.jpg").resolve()) for d in "AB"]
    # A changed on disk (new size and time): redone, not read back
    _save(tmp_path / "A" / "photo.jpg", one)
    detect_paths(detector, [tmp_path / "A" / "photo.jpg"], out)
    assert _faces_by_name(out) == {"photo.jpg": 1}


def test_png_then_jpg_of_one_stem_do_not_share_a_record(tmp_path, detector, photos):
    three, one = photos
    src, out = tmp_path / "in", tmp_path / "out"
    _save(src / "a.png", three)
    detect_paths(detector, [src], out)
    (stamp,) = [p.stat().st_mtime_ns for p in (out / "records").glob("*.json")]
    _save(src / "a.jpg", one)
    s = detect_paths(detector, [src], out)
    assert _faces_by_name(out) == {"a.jpg": 1, "a.png": 3} and s["inputs"] == 2
    assert (out / "records" / "a.json").stat().st_mtime_ns == stamp  # a.png's record was reused, untouched
    assert len(list((out / "annotated").iterdir())) == 2


# --- the bad-input corpus --------------------------------------------------------------------------------------------

def test_bad_input_corpus(tmp_path, detector, photos):
    "Every bad input gives a typed error record or a reported skip; nothing else in the batch is lost."
    _, one = photos
    src = tmp_path / "in"
    _save(src / "good.jpg", one)
    _save(src / "good.png", one[:, ::-1])  # repeated stems: good.jpg, good.png, sub/good.jpg
    _save(src / "sub" / "good.jpg", one)
    Image.new("RGB", (1, 100_000), (120, 120, 120)).save(src / "huge.png")  # no JPEG can hold a side over 65,535 px
    jpg = io.BytesIO()
    Image.fromarray(one).save(jpg, "JPEG")
    (src / "truncated.jpg").write_bytes(jpg.getvalue()[:2000])
    (src / "crc.png").write_bytes(_bad_crc_png())
    (src / "text.jpg").write_text("a text file, not a JPEG\n")
    (src / "zero.jpg").write_bytes(b"")
    (src / "sub" / "loop").symlink_to(src, target_is_directory=True)
    (src / "dir.jpg").mkdir()
    (src / "empty").mkdir()
    _video(src / "clip.avi", one)
    out = src / "out"  # the output folder inside the input
    (out / "annotated").mkdir(parents=True)
    stale = out / "annotated" / ".good.x1y2z3w4.tmp.jpg"  # what a hard kill leaves behind
    stale.write_bytes(b"\xff\xd8")
    s = detect_paths(detector, [src, src / "empty", src / "dir.jpg"], out, every=2, formats=("json", "csv", "coco"))
    assert not stale.exists() and s["removed_tmp"] == 1

    errors = {Path(e["path"]).name: e for e in s["errors"]}
    want = {"huge.png": ("save", "OSError", "broken data stream"),
            "truncated.jpg": ("read", "ImageError", "truncated"),
            "crc.png": ("read", "ImageError", "corrupt PNG (broken PNG file (bad header checksum"),
            "text.jpg": ("read", "ImageError", "not an image"),
            "zero.jpg": ("read", "ImageError", "empty file")}
    assert sorted(errors) == sorted(want)
    for name, (stage, kind, says) in want.items():
        assert (errors[name]["stage"], errors[name]["error_type"]) == (stage, kind), errors[name]
        assert says in errors[name]["error"], errors[name]

    skipped = {}
    for x in s["skipped"]:
        skipped.setdefault(Path(x["path"]).relative_to(src).as_posix(), []).append(x["reason"].split(" (")[0])
    assert skipped == {"sub/loop": ["symlink loop"], "out": ["the output folder"], "empty": ["folder holds no image"],
                       "dir.jpg": ["a folder named like an image: not read as one", "folder holds no image"]}, skipped

    # nothing else lost: the three "good" inputs and both video frames, each under its own name
    d = json.loads((out / "detections.json").read_text())
    faces = {Path(it["source"]).relative_to(src).as_posix(): len(it["detections"]) for it in d["items"]}
    assert faces == {"clip.avi#frame=0": 1, "clip.avi#frame=2": 1, "good.jpg": 1, "good.png": 1, "sub/good.jpg": 1}
    assert s["inputs"] == 9 and s["images"] == 5 and s["faces"] == 5
    assert len({it["annotated"] for it in d["items"]}) == 5
    assert len(list((out / "records").glob("*.json"))) == 9  # one record per input, failed ones included
    assert len((out / "detections.csv").read_text().strip().splitlines()) == 1 + 5

    # a rerun lists the same inputs (never its own output), reuses the good records and retries the failed ones
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    s2 = detect_paths(detector, [src, src / "empty", src / "dir.jpg"], out, every=2)
    assert (s2["inputs"], s2["images"], len(s2["errors"])) == (9, 5, 5)
    again = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    redone = sorted(n for n in stamps if again[n] != stamps[n])
    assert redone == sorted(f"{Path(n).stem}.json" for n in want)


# --- the CLI ---------------------------------------------------------------------------------------------------------

def _run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_output_inside_input_three_runs_and_coco(tmp_path, photos, monkeypatch):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    three, one = photos
    _save(tmp_path / "crowd.jpg", three)
    _save(tmp_path / "one.png", one)
    monkeypatch.chdir(tmp_path)
    counts = []
    for _ in range(3):
        rc, out, err = _run_main(["detect", ".", "--out", "det", "--preset", "fast", "--format", "coco", "--json"])
        assert rc == 0, err
        counts.append(json.loads(out)["images"])
    assert counts == [2, 2, 2]
    coco_file = tmp_path / "det" / "detections_coco.json"
    gt = COCO(str(coco_file))
    assert [c["name"] for c in gt.loadCats(gt.getCatIds())] == ["correct_mask", "incorrect_mask", "no_mask"]
    assert len(gt.getImgIds()) == 2 and len(gt.getAnnIds()) == 4
    anns = json.loads(coco_file.read_text())["annotations"]
    dt = gt.loadRes(anns)
    assert all(a["bbox"][2] > 0 and a["bbox"][3] > 0 and 0 < a["score"] <= 1 for a in dt.dataset["annotations"])
    ev = COCOeval(gt, dt, "bbox")  # the detections scored against themselves: every face found
    ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[1] == pytest.approx(1.0)  # AP@0.5
    assert not (tmp_path / "det" / "detections.csv").exists()  # --format coco: JSON (always) and COCO only


def test_parquet_output_is_the_json_output(tmp_path, photos):
    pq = pytest.importorskip("pyarrow.parquet")
    from fmd_rice.batch import PARQUET_DIR, parquet_records, read_parquet
    from fmd_rice.core import CLASSES
    three, one = photos
    _save(tmp_path / "in" / "crowd.jpg", three)
    _save(tmp_path / "in" / "one.png", one)
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not a photo")
    out = tmp_path / "det"
    for _ in range(2):  # the second run reuses every record and rewrites the same single part
        rc, _, err = _run_main(["detect", str(tmp_path / "in"), "--out", str(out), "--preset", "fast",
                                "--format", "parquet", "--no-images"])
        assert rc == 0, err
        assert sorted(p.relative_to(out / PARQUET_DIR).as_posix() for p in (out / PARQUET_DIR).rglob("*.parquet")) \
            == ["faces/local.parquet", "inputs/local.parquet"]
    summary = json.loads((out / "detections.json").read_text())
    faces, inputs = read_parquet(out / PARQUET_DIR)
    assert inputs.num_rows == 3 and faces.num_rows == summary["faces"] == 4
    assert [(r["status"], r["error"]) for r in inputs.to_pylist() if r["status"] != "ok"] == \
        [("error", "not an image (unrecognised format)")]
    card = json.loads((ROOT / "fmd_rice" / "models" / "fast.json").read_text())  # the fast preset's classifier
    assert set(faces.column("model_sha256").to_pylist()) == {card["sha256"]} == {summary["model_sha256"]}
    rows = {(r["source"], r["face"]): r for r in faces.to_pylist()}
    for it in summary["items"]:
        for k, d in enumerate(it["detections"]):
            r = rows[(it["source"], k)]
            assert (r["label"], [r["x1"], r["y1"], r["x2"], r["y2"]], r["score"]) == (d["label"], d["box"], d["score"])
            assert [r[f"p_{c}"] for c in CLASSES] == [d["probs"][c] for c in CLASSES] and len(r["landmarks"]) == 10
    records = {r["key"]: r for r in map(load_record, (out / "records").glob("*.json"))}
    assert {r["key"]: r for r in parquet_records(out / PARQUET_DIR)} == records  # the records, read back whole
    assert pq.read_table(out / PARQUET_DIR / "faces" / "local.parquet").num_rows == 4  # no row written twice


def test_cli_user_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "dir.jpg").mkdir()
    for argv, says in [(["detect", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], "folder holds no image"),
                       (["detect", str(tmp_path / "dir.jpg")], "named like an image"),
                       (["classify", str(tmp_path / "empty")], "nothing to read"),
                       (["detect", str(tmp_path / "empty"), "--detector", "aizoo", "--model", "x.keras"],
                        "nothing to read")]:
        rc, out, err = _run_main(argv)
        assert rc == EXIT_USER_ERROR, (argv, rc, err)
        assert len(err.strip().splitlines()) == 1 and says in err, (argv, err)
    _save(tmp_path / "a" / "x.png", np.zeros((8, 8, 3), np.uint8))
    rc, _, err = _run_main(["detect", str(tmp_path / "a"), "--detector", "aizoo", "--model", "x.keras"])
    assert rc == EXIT_USER_ERROR and "--model and --score apply to the fmd_rice detector only" in err
    rc, _, err = _run_main(["detect", str(tmp_path / "a"), "--detector", "aizoo", "--score", "0.6"])
    assert rc == EXIT_USER_ERROR and "apply to the fmd_rice detector only" in err
    for argv in (["detect", "x", "--every", "0"], ["detect", "x", "--detector", "nope"], ["faces", "x", "--score", "2"]):
        with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()):
            main(argv)
        assert e.value.code == 2


def test_ctrl_c_is_one_line_and_resumes(tmp_path, photos):
    _, one = photos
    src, out = tmp_path / "in", tmp_path / "out"
    n = 300  # about 9 s of work at `fast`: the run is surely still going when the signal goes out
    for i in range(n):
        _save(src / f"p{i:03d}.jpg", one)
    cmd = [FMD_RICE, "detect", str(src), "--out", str(out), "--preset", "fast", "--no-images"]
    # a shell that starts jobs in the background without job control makes them ignore SIGINT, and children inherit
    # that: give the command the default, as a terminal would
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not list((out / "records").glob("p*.json")) and time.time() - t0 < 240 and p.poll() is None:
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1].startswith("fmd-rice detect: interrupted")
    kept = len(list((out / "records").glob("p*.json")))
    assert 1 <= kept < n
    r = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and json.loads(r.stdout)["images"] == n, r.stderr


# --- permissions, as a user who may not read the files ---------------------------------------------------------------

def _drop_privileges():
    os.setgid(65534)
    os.setuid(65534)


CHILD = textwrap.dedent("""
    import contextlib, io, json, sys
    from fmd_rice.cli import main
    d = sys.argv[1]
    res = {}
    for name, argv in {"detect": ["detect", d + "/in", "--out", d + "/out", "--preset", "fast", "--json"],
                       "classify": ["classify", d + "/in", "--json"], "faces": ["faces", d + "/in", "--json"]}.items():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
        res[name] = {"rc": rc, "out": json.loads(out.getvalue() or "null"), "err": err.getvalue()}
    print(json.dumps(res))
""")


def _unprivileged_python():
    "(python, env) that can run this package as uid 65534 (the venv's interpreter may sit under /root), or a reason."
    import sysconfig
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])}
    same = f"python{sys.version_info.major}.{sys.version_info.minor}"
    why = []
    for exe in dict.fromkeys([sys.executable, f"/usr/bin/{same}", f"/usr/local/bin/{same}"]):
        try:
            probe = subprocess.run([exe, "-c", "import os, fmd_rice.images; print(os.getuid())"], capture_output=True,
                                   text=True, env=env, cwd="/", timeout=120, preexec_fn=_drop_privileges)
        except OSError as e:
            why.append(f"{exe}: {e.strerror}")
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "65534":
            return exe, env
        why.append(f"{exe}: {probe.stderr.strip().splitlines()[-1:] or probe.returncode}")
    return None, "; ".join(why)


def test_unreadable_files_are_error_records(photos):
    "`detect`, `classify` and `faces` as a user who may not read a file or list a folder: a record, not a crash."
    root = os.geteuid() == 0
    python, env = sys.executable, {**os.environ, "PYTHONPATH": str(ROOT)}
    if root:
        python, env = _unprivileged_python()
        if python is None:
            pytest.skip(f"running as root, and no Python can run this package as uid 65534 here ({env})")
    _, one = photos
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        os.chmod(d, 0o777)
        src = Path(d) / "in"
        _save(src / "good.jpg", one)
        _save(src / "secret.jpg", one)
        _save(src / "locked" / "hidden.jpg", one)
        for p in (src, src / "good.jpg"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(src / "secret.jpg", 0)
        os.chmod(src / "locked", 0)
        (Path(d) / "home").mkdir(mode=0o777)
        os.chmod(Path(d) / "home", 0o777)
        env = {**env, "HOME": f"{d}/home", "FMD_RICE_CACHE": f"{d}/home/cache"}
        try:
            r = subprocess.run([python, "-c", CHILD, d], capture_output=True, text=True, timeout=600, env=env,
                               cwd=d, preexec_fn=_drop_privileges if root else None)
        finally:
            os.chmod(src / "locked", 0o755)
            os.chmod(src / "secret.jpg", 0o644)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    det = res["detect"]
    assert det["rc"] == 0, det["err"]
    assert [(Path(e["path"]).name, e["stage"]) for e in det["out"]["errors"]] == [("secret.jpg", "read")]
    assert "permission denied" in det["out"]["errors"][0]["error"]
    assert [Path(it["source"]).name for it in det["out"]["items"]] == ["good.jpg"]
    assert any(Path(s["path"]).name == "locked" and s["reason"].startswith("cannot list folder")
               for s in det["out"]["skipped"])
    cls = {Path(x["path"]).name: x for x in res["classify"]["out"]}
    assert res["classify"]["rc"] == 0 and "label" in cls["good.jpg"] and "permission denied" in cls["secret.jpg"]["error"]
    faces = res["faces"]
    assert faces["rc"] == 0 and [Path(e["path"]).name for e in faces["out"]["errors"]] == ["secret.jpg"]
    assert [Path(x["path"]).name for x in faces["out"]["images"]] == ["good.jpg"]


# --- lost work: `evaluate` saves its predictions every few seconds ---------------------------------------------------

EVAL_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    from PIL import Image
    from fmd_rice.detector import Detector
    from fmd_rice.evaluation import evaluate
    d = sys.argv[1]
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(f"{d}/x.png")
    class Slow(Detector):
        name, n = "slow", 0
        def detect(self, image):
            Slow.n += 1
            if Slow.n == 8: os.kill(os.getpid(), signal.SIGKILL)  # a hard kill: no `finally` runs
            time.sleep(0.5)
            return []
    images = [{"path": f"{d}/x.png#{i}" if i else f"{d}/x.png", "faces": []} for i in range(12)]
    for im in images[1:]: os.link(f"{d}/x.png", im["path"])
    evaluate(Slow(), images, progress=False, cache=f"{d}/predictions.json")
""")


def test_evaluate_keeps_its_work_through_a_hard_kill(tmp_path):
    r = subprocess.run([sys.executable, "-c", EVAL_CHILD, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    cache = tmp_path / "predictions.json"
    assert cache.exists(), "nothing was saved before the kill"
    assert len(json.loads(cache.read_text())["records"]) >= 4  # 7 images done in 3.5 s: saved at least once after 2 s

"`fmd_rice.reproduce` on tiny throwaway notebooks: run, skip, rerun, fail, resume, and the kernel it picks."
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

from fmd_rice.core import FmdRiceError, write_json
from fmd_rice.reproduce import code_fingerprint as real_code_fingerprint
from fmd_rice.reproduce import (KERNEL_NAME, MANIFEST, ReproduceError, data_fingerprint, ensure_kernel,
                                load_manifest, plan_steps, reproduce)

PARAMS = 'profile = "smoke"\ndata = None\nfigures = "../../figures"\nwork = "../../runs/work"'


@pytest.fixture(autouse=True)
def pinned_code(monkeypatch):
    "Pin the library-code fingerprint: other work exporting modules meanwhile must not rerun these steps."
    import fmd_rice.reproduce as r
    monkeypatch.setattr(r, "code_fingerprint", lambda *a: "pinned")


def tiny(path, *code):
    "A notebook like the paper ones: a `parameters` cell, then `code` cells."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# tiny"),
                                         nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]})]
                                  + [nbformat.v4.new_code_cell(c) for c in code])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return Path(path)


def writes(name):
    "Code that writes `<figures>/<name>.txt` with the parameters and appends to `<work>/runs.log`."
    return ("from pathlib import Path\n"
            f"Path(figures, '{name}.txt').write_text(f'{{profile}} {{data}} {{work}}')\n"
            f"with open(Path(work, 'runs.log'), 'a') as f: f.write('{name}\\n')")


def statuses(m, steps):
    return [m["steps"][s]["status"] for s in steps]


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    (d / "setA" / "x").mkdir(parents=True)
    (d / "setA" / "x" / "1.jpg").write_bytes(b"abc")
    (d / "setB").mkdir()
    (d / "setB" / "2.jpg").write_bytes(b"defg")
    return d


@pytest.fixture
def foreign_python3(tmp_path, monkeypatch):
    "A `python3` kernelspec of another interpreter first on the Jupyter path, as on a machine with a system kernel."
    write_json(tmp_path / "jp" / "kernels" / "python3" / "kernel.json",
               {"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "system", "language": "python"})
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    return tmp_path / "mine"


def test_kernel_runs_this_interpreter(foreign_python3):
    from jupyter_client.kernelspec import KernelSpecManager
    name = ensure_kernel(spec_dir=foreign_python3)
    assert name == KERNEL_NAME
    assert KernelSpecManager().get_kernel_spec(name).argv[0] == sys.executable
    assert ensure_kernel(spec_dir=foreign_python3) == KERNEL_NAME  # found, not rewritten


def test_run_skip_rerun(tmp_path, data):
    steps = {"a": tiny(tmp_path / "a.ipynb", writes("a")), "b": tiny(tmp_path / "b.ipynb", writes("b"))}
    out = tmp_path / "out"
    log = out / "work" / "runs.log"
    # (a) a run executes every step, in order, with absolute paths, and writes the manifest
    m = reproduce("smoke", data=data, out=out, steps=steps, progress=False)
    assert statuses(m, steps) == ["ok", "ok"] and m["status"] == "ok"
    assert (out / "figures" / "b.txt").read_text() == f"smoke {data} {out / 'work'}"
    assert log.read_text() == "a\nb\n"
    assert [p.name for p in sorted((out / "notebooks").iterdir())] == ["01_a.ipynb", "02_b.ipynb"]
    disk = json.loads((out / MANIFEST).read_text())
    assert disk["steps"]["a"]["status"] == "ok" and disk["steps"]["a"]["run_s"] > 0
    assert disk["data"]["setA"] == {"files": 1, "bytes": 3, "hash": data_fingerprint(data)["setA"]["hash"]}
    assert disk["versions"]["papermill"] and disk["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert disk["parameters"]["figures"] == str(out / "figures")
    # (b) a second run skips every step
    m = reproduce("smoke", data=data, out=out, steps=steps, progress=False)
    assert statuses(m, steps) == ["skipped", "skipped"] and log.read_text() == "a\nb\n"
    assert m["steps"]["a"]["why"] == "unchanged" and m["steps"]["b"]["run_s"] > 0
    # (c) --force reruns the selected step only; a changed parameter reruns all
    m = reproduce("smoke", data=data, out=out, steps=steps, only=["b"], force=True, progress=False)
    assert statuses(m, steps) == ["skipped", "ok"] and log.read_text() == "a\nb\nb\n"
    assert m["steps"]["b"]["why"] == "forced"
    assert m["steps"]["a"]["status"] == "skipped"  # untouched record of the unselected step
    # editing code in an earlier step reruns it and every later step (they read what it wrote)
    tiny(steps["a"], writes("a"), "x = 1")
    m = reproduce("smoke", data=data, out=out, steps=steps, progress=False)
    assert statuses(m, steps) == ["ok", "ok"] and log.read_text() == "a\nb\nb\na\nb\n"
    assert (m["steps"]["a"]["why"], m["steps"]["b"]["why"]) == ("changed: notebook code", "changed: an earlier step")
    # a changed parameter (another figures folder) or changed data reruns
    (data / "setB" / "3.jpg").write_bytes(b"new")
    m = reproduce("smoke", data=data, out=out, steps=steps, only=["a"], figures=tmp_path / "figs", progress=False)
    assert m["steps"]["a"]["status"] == "ok" and (tmp_path / "figs" / "a.txt").is_file()
    assert m["steps"]["a"]["why"] == "changed: parameters, data"
    assert m["data"]["setB"]["files"] == 2


def test_fail_then_resume(tmp_path, capsys):
    steps = {"a": tiny(tmp_path / "a.ipynb", writes("a")),
             "b": tiny(tmp_path / "b.ipynb", "x = 1", "raise ValueError('bad backbone')"),
             "c": tiny(tmp_path / "c.ipynb", writes("c"))}
    out = tmp_path / "out"
    # (d) a failing cell stops the run, names the cell, keeps earlier outputs; the manifest says failed
    with pytest.raises(ReproduceError) as ei:
        reproduce("smoke", out=out, steps=steps)
    e = ei.value
    assert isinstance(e, FmdRiceError)
    assert (e.step, e.cell, e.ename, e.evalue) == ("b", 3, "ValueError", "bad backbone")
    assert str(e).startswith("step 'b' failed in cell 3 (In [")
    assert str(out / "notebooks" / "02_b.ipynb") in str(e) and Path(e.notebook).is_file()
    assert (out / "figures" / "a.txt").is_file() and not (out / "figures" / "c.txt").exists()
    m = load_manifest(out)
    assert (m["status"], m["failed_step"]) == ("failed", "b")
    assert m["steps"]["a"]["status"] == "ok" and "c" not in m["steps"]
    assert m["steps"]["b"]["status"] == "failed" and m["steps"]["b"]["error"]["ename"] == "ValueError"
    err = capsys.readouterr().err
    assert "[1/3] a: running" in err and "[2/3] b: FAILED" in err
    # (e) after the fix, the next run skips the done step and resumes at the failed one
    tiny(steps["b"], "x = 1", "y = 2")
    m = reproduce("smoke", out=out, steps=steps)
    assert statuses(m, steps) == ["skipped", "ok", "ok"] and m["status"] == "ok"
    assert "[1/3] a: unchanged" in capsys.readouterr().err


def test_code_change_reruns(tmp_path, monkeypatch):
    import fmd_rice.reproduce as r
    steps = {"a": tiny(tmp_path / "a.ipynb")}
    assert reproduce("smoke", out=tmp_path / "out", steps=steps, progress=False)["steps"]["a"]["status"] == "ok"
    monkeypatch.setattr(r, "code_fingerprint", lambda *a: "edited")
    assert reproduce("smoke", out=tmp_path / "out", steps=steps, progress=False)["steps"]["a"]["status"] == "ok"
    assert len(real_code_fingerprint()) == 64


def test_bad_arguments(tmp_path):
    with pytest.raises(ReproduceError, match="unknown profile 'fast'"):
        reproduce("fast", out=tmp_path, steps={"a": tiny(tmp_path / "a.ipynb")})
    with pytest.raises(ReproduceError, match="unknown step"):
        plan_steps({"a": tmp_path / "a.ipynb"}, only=["b"])
    with pytest.raises(ReproduceError, match="not found"):
        reproduce("smoke", out=tmp_path, steps={"a": tmp_path / "none.ipynb"})
    with pytest.raises(FmdRiceError, match="not a folder"):
        reproduce("smoke", data=tmp_path / "nodata", out=tmp_path, steps={"a": tiny(tmp_path / "a.ipynb")})


def test_paper_steps_planned():
    "The real paper notebooks, when present, are found in order (they are written by other chapters)."
    from fmd_rice.reproduce import STEPS, repo_root
    if not all((repo_root() / p).is_file() for p in STEPS.values()):
        pytest.skip("paper notebooks not all written yet")
    plan = plan_steps()
    assert [n for n, _, _ in plan] == ["data", "backbones", "selection", "classifier", "detectors", "cv"]
    assert [n for n, _, sel in plan if sel] == ["data", "backbones", "classifier", "detectors"]  # selection, cv: only when named


def test_step_code_fingerprint_follows_imports():
    from fmd_rice.reproduce import code_modules, repo_root
    nbs = repo_root() / "nbs" / "paper"
    assert code_modules(nbs / "02_backbones.ipynb") == ["backbones", "core", "data", "faces", "images", "profiles", "runtime"]
    assert "evaluation" in code_modules(nbs / "03_classifier.ipynb")
    assert "peers" in code_modules(nbs / "04_detectors.ipynb")
    assert real_code_fingerprint(nbs / "01_data.ipynb") != real_code_fingerprint(nbs / "04_detectors.ipynb")

"The `smoke` profile end to end on the real data: every paper notebook runs under papermill (CI runs this)."
import json

import pytest

from fmd_rice.reproduce import DEFAULT_STEPS, reproduce

pytestmark = pytest.mark.reproduction  # minutes: `make test-fast` leaves it out

EXPECTED = ["corpus.csv", "corpus.md", "kaggle853.csv", "corpus_samples.png",
            "backbones.csv", "backbones.md", "mobilenets_acc_loss.png", "resnet_acc_loss.png",
            "classifier.csv", "classifier.md", "mistakes_kaggle12k.png", "mistakes_kaggle12k.md",
            "detectors.csv", "detectors.md", "resizing.csv", "fig6_running_accuracy.png", "pr_curves.png",
            "small_faces.csv", "small_faces.md"]


def test_smoke_profile_runs_every_notebook(data_root, tmp_path):
    m = reproduce("smoke", data=data_root, out=tmp_path / "run", progress=False)
    assert [m["steps"][s]["status"] for s in DEFAULT_STEPS] == ["ok"] * len(DEFAULT_STEPS)
    figs = tmp_path / "run" / "figures"
    missing = [f for f in EXPECTED if not (figs / f).is_file()]
    assert not missing, f"smoke run did not write {missing}"
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "ok"
    # the smoke profile never touches the committed figures
    assert m["parameters"]["figures"] == str(figs)
    # a second run right after skips every step
    m2 = reproduce("smoke", data=data_root, out=tmp_path / "run", progress=False)
    assert [m2["steps"][s]["status"] for s in DEFAULT_STEPS] == ["skipped"] * len(DEFAULT_STEPS)
    # the optional selection step runs only when asked for, and leaves the default steps alone
    assert "selection" not in m2["steps"]
    m3 = reproduce("smoke", data=data_root, out=tmp_path / "run", only=["selection"], progress=False)
    assert m3["steps"]["selection"]["status"] == "ok" and (figs / "classifier_selection.md").is_file()
    assert (figs / "classifier_finalists.md").is_file()

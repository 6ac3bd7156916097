"""The core install and its extras: pyproject.toml against ``ichprog._extras.EXTRAS``, and the
error a user gets when an extra is missing (simulated by blocking its packages' imports)."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from ichprog._extras import EXTRAS, MissingExtraError, missing_packages, require_extra

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

#: distribution name -> import name, where they differ
IMPORT_NAMES = {"xgboost-cpu": "xgboost", "scikit-learn": "sklearn"}


def _dist_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0).lower()


def _import_names(requirements: list[str]) -> set[str]:
    return {IMPORT_NAMES.get(_dist_name(r), _dist_name(r)) for r in requirements}


def test_core_dependencies_are_the_light_ones():
    core = {_dist_name(r) for r in PYPROJECT["dependencies"]}
    assert core == {"numpy", "scipy", "pandas", "scikit-learn", "tqdm", "tomli"}
    tomli = [r for r in PYPROJECT["dependencies"] if _dist_name(r) == "tomli"]
    assert "python_version < '3.11'" in tomli[0]


def test_extras_table_matches_pyproject():
    declared = PYPROJECT["optional-dependencies"]
    user_facing = set(declared) - {"all", "dev", "docs"}
    assert user_facing == set(EXTRAS) == {"image", "tabular", "report", "dicom", "ray"}
    for extra, imports in EXTRAS.items():
        assert _import_names(declared[extra]) == set(imports), extra
    # xgboost: the CPU-only wheel on Linux, the regular one elsewhere
    tab = declared["tabular"]
    assert any(r.startswith("xgboost-cpu") and "sys_platform == 'linux'" in r for r in tab)
    assert any(r.startswith("xgboost>") and "sys_platform != 'linux'" in r for r in tab)
    # `all` is every user-facing extra, by reference so that it cannot drift
    (ref,) = declared["all"]
    assert re.fullmatch(r"ichprog\[([a-z,]+)\]", ref)
    assert set(ref[len("ichprog["):-1].split(",")) == user_facing
    assert {"build", "twine", "pytest", "hypothesis"} <= {_dist_name(r) for r in declared["dev"]}


def test_missing_extra_error_message_and_fields():
    err = MissingExtraError("ichprog.data", "image", ["torch", "monai"])
    assert isinstance(err, ImportError)
    assert str(err) == ("ichprog.data needs the 'image' extra: pip install 'ichprog[image]' "
                        "(not installed: torch, monai)")
    assert (err.extra, err.extras, err.missing, err.name) == ("image", ("image",),
                                                              ("torch", "monai"), "torch")
    both = MissingExtraError.combine("'ichprog tabular'", [
        err, MissingExtraError("ichprog.tabular", "tabular", ["shap"]),
        MissingExtraError("ichprog.report", "report", ["matplotlib"]),
        MissingExtraError("ichprog.models", "image", ["torch"])])
    assert str(both) == ("'ichprog tabular' needs the 'image', 'tabular' and 'report' extras: "
                         "pip install 'ichprog[image,tabular,report]' "
                         "(not installed: torch, monai, shap, matplotlib)")
    again = pickle.loads(pickle.dumps(both))
    assert (str(again), again.extras, again.missing) == (str(both), both.extras, both.missing)


def test_require_extra_checks_its_arguments_and_finds_installed_packages(monkeypatch):
    with pytest.raises(ValueError, match="unknown extra 'images'"):
        require_extra("x", "images")
    with pytest.raises(ValueError, match="does not install \\['torch'\\]"):
        require_extra("x", "tabular", ("torch",))
    assert missing_packages(["numpy", "ichprog_no_such_package"]) == ["ichprog_no_such_package"]
    monkeypatch.setitem(sys.modules, "ichprog_blocked", None)  # a blocked import counts as missing
    assert missing_packages(["ichprog_blocked"]) == ["ichprog_blocked"]
    require_extra("x", "image", ("torch",))  # installed here: no error


def test_figures_name_the_report_extra(monkeypatch):
    from ichprog.training import plot_history

    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]})
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=re.escape(
            "ichprog.training.plot_history needs the 'report' extra: "
            "pip install 'ichprog[report]'")):
        plot_history(history, ["prognosis"])


def test_a_by_product_figure_is_skipped_with_a_warning_and_the_model_kept(tmp_path, monkeypatch):
    from ichprog.experiment.fitted import _write_fitted
    from ichprog.training import plot_history

    saved = []

    class Fitted:
        def save(self, path):
            saved.append(path)

    class Result:
        history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]})

        def plot_history(self, path):
            return plot_history(self.history, ["prognosis"], path=path)

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.warns(UserWarning, match=r"history.png not written: .*'report' extra"):
        _write_fitted(Fitted(), Result(), tmp_path, None, keep_checkpoints=True)
    assert saved == [tmp_path / "model"]
    assert not (tmp_path / "model" / "history.png").exists()


def test_tabular_dense_network_names_the_image_extra(monkeypatch):
    import numpy as np

    from ichprog.tabular import PerezDNNClassifier

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'ichprog[image]'")):
        PerezDNNClassifier().fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]))


_BLOCK = """
import sys
BLOCKED = {blocked!r}

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Block())
"""


def _run_without(blocked: set[str], code: str) -> subprocess.CompletedProcess[str]:
    script = _BLOCK.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)


ALL_HEAVY = {name for names in EXTRAS.values() for name in names}


def test_without_any_extra_the_core_imports_and_the_rest_names_its_extra():
    out = _run_without(ALL_HEAVY, """
        import importlib
        import ichprog
        from ichprog import constants, encoding, metrics, tasks
        print("core", metrics.uoc_index([0, 1, 2], [0, 1, 2], labels=[0, 1, 2]),
              encoding.gcs_ordinal([3, 9, 15]).tolist())
        for name in ["data", "models", "training", "saliency", "experiment", "tabular",
                     "report", "recipes"]:
            try:
                getattr(ichprog, name)
            except ImportError as exc:
                print(f"{name}|{type(exc).__name__}|{exc}")
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print("heavy", heavy)
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "core 0.0 [2, 1, 0]"
    errors = {ln.split("|")[0]: ln.split("|")[1:] for ln in lines[1:-1]}
    assert errors["data"] == ["MissingExtraError",
                              "ichprog.data needs the 'image' extra: pip install 'ichprog[image]' "
                              "(not installed: torch, monai, nibabel)"]
    expected = {"data": "image", "models": "image", "training": "image", "saliency": "image",
                "experiment": "image", "recipes": "image", "tabular": "tabular",
                "report": "report"}
    assert set(errors) == set(expected)
    for name, extra in expected.items():
        kind, message = errors[name]
        assert kind == "MissingExtraError"
        assert message.startswith(f"ichprog.{name} needs the '{extra}' extra: "
                                  f"pip install 'ichprog[{extra}]'"), message
    assert lines[-1] == "heavy []"


def test_with_only_the_image_extra_tabular_and_report_name_theirs():
    out = _run_without(set(EXTRAS["tabular"]) | set(EXTRAS["report"]), """
        import ichprog.data, ichprog.experiment, ichprog.saliency
        for name in ["ichprog.tabular", "ichprog.report"]:
            try:
                __import__(name)
            except ImportError as exc:
                print(exc)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "ichprog.tabular needs the 'tabular' extra: pip install 'ichprog[tabular]' "
        "(not installed: shap, xgboost)",
        "ichprog.report needs the 'report' extra: pip install 'ichprog[report]' "
        "(not installed: matplotlib)",
    ]


def test_cli_stops_before_running_and_names_every_missing_extra(tmp_path):
    out = _run_without(ALL_HEAVY, f"""
        from ichprog.cli import main
        print("codes", main(["demo", "--quick", "--out", {str(tmp_path / 'demo')!r}]),
              main(["report", {str(tmp_path)!r}]), main(["--version"]))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "codes 2 2 0"
    err = out.stderr.splitlines()
    assert err[0] == ("ichprog demo: error: 'ichprog demo' needs the 'image', 'tabular' and "
                      "'report' extras: pip install 'ichprog[image,tabular,report]' "
                      "(not installed: torch, monai, nibabel, safetensors, shap, xgboost, "
                      "captum, matplotlib)")
    assert err[1] == ("ichprog report: error: 'ichprog report' needs the 'report' extra: "
                      "pip install 'ichprog[report]' (not installed: matplotlib)")
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "demo").exists()  # nothing was started

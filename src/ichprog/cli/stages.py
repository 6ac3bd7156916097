"""The stages of a run: the cohort (phantom or table), the tabular baselines, the
cross-validation of image models, the loss ablations, the paper's claims and the saliency maps.
Each is skipped when its marker in the run folder says it is finished with the same settings."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ichprog._util import save_figure, write_csv, write_text
from ichprog._version import __version__
from ichprog.cli.config import _presets
from ichprog.cli.errors import ConfigError
from ichprog.cli.run import _describe_cohort, _forget_results, _Run


def _stage_key(cfg: Mapping[str, Any], *sections: str) -> dict[str, Any]:
    return {s: cfg[s] for s in sections} | {"seed": cfg["run"]["seed"], "version": __version__}


def _load_cohort(run: _Run) -> Any:
    """The cohort of the configuration: the phantom (generated once under ``out/phantom``) or
    the user's table and scans."""
    cfg = run.cfg
    data = cfg["data"]
    if data["source"] == "table":
        from ichprog.data import load_cohort

        if not data["table"]:
            raise ConfigError("[data] source = 'table' needs [data] table = 'path/to/table.csv'")
        table = Path(data["table"])
        if not table.is_file():
            raise ConfigError(f"[data] table: file {table} does not exist")
        for name in ("image_dir", "mask_dir"):
            if data[name] and not Path(data[name]).is_dir():
                raise ConfigError(f"[data] {name} (--{name.replace('_', '-')}): folder "
                                  f"{data[name]} does not exist")
        if not data["image_dir"]:
            run.say(f"[data] scans are looked for in the table's folder {table.parent.resolve()} "
                    "([data] image_dir / --image-dir is not set)")
        cohort = load_cohort(table, image_dir=data["image_dir"] or None,
                             mask_dir=data["mask_dir"] or None, scan_checks=_scan_checks(cfg))
        _check_table_unchanged(run, table)
        run.manifest.phantom = False
    else:
        from ichprog.data import make_phantom_cohort

        pdir = run.out / "phantom"
        key = _stage_key(cfg, "data")
        with run.stage("phantom", key) as todo:
            if todo:
                _forget_results(run)
                make_phantom_cohort(n=data["n_patients"], seed=cfg["run"]["seed"], out_dir=pdir,
                                    shape=tuple(data["phantom_shape"]),
                                    progress=cfg["run"]["progress"], overwrite=True)
        from ichprog.data import load_cohort

        cohort = load_cohort(pdir / "clinical.csv", image_dir=pdir,
                             mask_dir=pdir / "masks" if (pdir / "masks").is_dir() else None,
                             scan_checks=_scan_checks(cfg))
        run.manifest.phantom = True
    _describe_cohort(run, cohort)
    return cohort


def _check_table_unchanged(run: _Run, table: Path) -> None:
    """Key the run folder's results on the clinical table's content: when the table's SHA-256
    differs from the one recorded in ``run.json``, the results computed on the old table are
    removed (and the user is told), so that no model trained on other data is reused."""
    from ichprog._util import file_sha256

    digest = file_sha256(table)
    old = run.manifest.extra.get("table_sha256")
    if old is not None and old != digest:
        _forget_results(run, reason=f"the clinical table {table} changed since the results in "
                                    f"this folder were computed (SHA-256 {old[:12]}... -> "
                                    f"{digest[:12]}...)")
    run.manifest.extra["table_sha256"] = digest


def _scan_checks(cfg: Mapping[str, Any]) -> Any:
    from ichprog.data import ScanChecks

    c = cfg["checks"]
    return ScanChecks(hu_range=c["hu_range"], tissue=c["tissue"], size=c["size"],
                      mask_grid=c["mask_grid"], action=c["action"])


def _not_available(what: str, exc: Exception) -> RuntimeError:
    return RuntimeError(f"{what} is not available in this installation of ichprog ({exc})")


def _stage_tabular(run: _Run, cohort: Any) -> None:
    cfg = run.cfg
    key = _stage_key(cfg, "data", "tabular")
    with run.stage("tabular", key) as todo:
        if not todo:
            return
        try:
            from ichprog import tabular
        except ImportError as exc:  # pragma: no cover
            raise _not_available("the tabular stage", exc) from exc
        out = run.out / "tabular"
        out.mkdir(parents=True, exist_ok=True)
        _run_tabular(tabular, cohort, cfg, out, run)


def _run_tabular(tabular: Any, cohort: Any, cfg: Mapping[str, Any], out: Path, run: _Run) -> None:
    import pandas as pd

    seed = cfg["run"]["seed"]
    progress = cfg["run"]["progress"]
    tab = cfg["tabular"]
    res = tabular.table1(cohort, folds=tab["folds"], seed=seed, progress=progress,
                         val_fraction=tab["val_fraction"],
                         params={"dnn": {"max_epochs": tab["dnn_epochs"]}})
    write_csv(res.metrics, out / "metrics.csv", checksum=True)
    write_csv(res.predictions, out / "predictions.csv", checksum=True)
    if tab["shap"]:
        rows = []
        for label, r in res.results.items():
            # the tree explainer of the random forest on all variables: exact and fast, out of
            # fold (each fold's model explains its own test patients)
            if r.model != "rf" or len(r.features) <= 2:
                continue
            imp, expl = tabular.shap_importance(r, cohort, seed=seed, return_explanation=True,
                                                progress=progress)
            rows += [{"model": label, "feature": f, "importance": float(v)}
                     for f, v in zip(imp["feature"], imp["mean_abs_shap"])]
            tabular.plot_shap(expl, out, name="shap_" + r.model, kinds=("beeswarm",),
                              title=f"SHAP values, {label}, out of fold")
        write_csv(pd.DataFrame(rows, columns=["model", "feature", "importance"]),
                  out / "shap.csv", checksum=True)
    if tab["boundaries"]:
        cut = tabular.decision_boundaries(cohort, seed=seed)
        write_text(out / "boundaries.json", json.dumps(cut, indent=2), checksum=True)
        tabular.plot_decision_regions(cohort, out / "decision_regions.png", boundaries=cut,
                                      seed=seed)
        run.manifest.tabular["learned cut-offs"] = cut


def _preprocess_config(cfg: Mapping[str, Any]) -> Any:
    from ichprog.data import PreprocessConfig

    p = cfg["preprocess"]
    return PreprocessConfig(shape=tuple(p["shape"]), window=p["window"],
                            window_level=p["window_level"], window_width=p["window_width"],
                            skull_strip=p["skull_strip"], reorient=p["reorient"],
                            checks=_scan_checks(cfg))


def _train_config(cfg: Mapping[str, Any], seed: int) -> Any:
    from ichprog.training import TrainConfig

    t = cfg["train"]
    return TrainConfig(max_epochs=t["epochs"], batch_size=t["batch_size"],
                       accumulation_steps=t["accumulation_steps"], lr=t["lr"],
                       weight_decay=t["weight_decay"], patience=t["patience"] or None,
                       seed=seed, device=cfg["run"]["device"], precision=t["precision"],
                       schedule=t["schedule"], select=t["select"],
                       class_balance=t["class_balance"], tta=t["tta"],
                       progress=cfg["run"]["progress"])


def _preset(cfg: Mapping[str, Any], name: str) -> Any:
    from ichprog.tasks import Preset, as_preset, get_preset

    preset = get_preset(name) if isinstance(name, str) else name
    assert isinstance(preset, Preset)
    trunk = cfg["model"]["trunk"]
    return as_preset(preset, trunk=trunk or None)


def _check_input_size(cfg: Mapping[str, Any], preset: Any) -> None:
    from ichprog.models.trunks import build_trunk

    spec = build_trunk(preset.trunk)
    shape = cfg["preprocess"]["shape"]
    if min(shape) < spec.min_size:
        raise ConfigError(
            f"[preprocess] shape: the {preset.trunk} trunk needs every side >= {spec.min_size} "
            f"voxels, got {shape}; use a larger shape or another trunk")


def _cv_kwargs(run: _Run) -> dict[str, Any]:
    """How every image model of a run is trained (the same for the cv, ablation and claims
    stages, so that each reuses the folds another trained)."""
    cfg = run.cfg
    return {"preprocess": _preprocess_config(cfg), "config": _train_config(cfg, cfg["run"]["seed"]),
            "cache_dir": run.out / "cache", "augment": cfg["train"]["augment"],
            "model_kwargs": {"dropout": cfg["model"]["dropout"]}, "preload": True,
            "overwrite": True, "executor": _executor(cfg)}


def _executor(cfg: Mapping[str, Any]) -> Any:
    """The executor of ``[cv] executor``: ``"serial"``, or a
    :class:`~ichprog.experiment.RayExecutor` with the ``ray_*`` keys (raises the missing-extra
    error without Ray)."""
    c = cfg["cv"]
    if c["executor"] != "ray":
        return c["executor"]
    from ichprog.experiment import RayExecutor

    return RayExecutor(address=c["ray_address"] or None, num_cpus=c["ray_num_cpus"],
                       num_gpus=c["ray_num_gpus"])


def _cv_preset(run: _Run, cohort: Any, preset: Any, out: Path, splits: Any,
               ensemble: bool = False) -> dict[str, Any]:
    """Cross-validate one preset with :func:`ichprog.experiment.cross_validate` on shared
    splits; returns its tidy metrics, long predictions, histories and result. With
    ``ensemble``, its fold models are also saved as a calibrated ensemble with a model card."""
    from ichprog.experiment import cross_validate

    cfg = run.cfg
    res = cross_validate(cohort, preset, folds=len(splits.folds), seed=cfg["run"]["seed"],
                         out_dir=out, splits=splits, val_fraction=cfg["cv"]["val_fraction"],
                         name=preset.name, progress=cfg["run"]["progress"],
                         **_cv_kwargs(run))
    if res.reused_folds:
        run.say(f"  {preset.label}: reusing finished fold(s) {res.reused_folds} in {out}")
    if ensemble:
        _save_ensemble(run, cohort, out)
    hist = res.history.copy()
    if len(hist):
        hist.insert(0, "model", preset.name)
    return {"metrics": res.metrics, "predictions": res.long_predictions, "history": hist,
            "result": res}


def _save_ensemble(run: _Run, cohort: Any, out: Path) -> None:
    """The cross-validation's fold models as one ensemble: calibrated on each fold's validation
    part, with ``ensemble.json``, ``model_card.json`` and ``calibration/`` in ``out``."""
    import warnings

    from ichprog.experiment import load_ensemble

    cfg = run.cfg
    c = cfg["cv"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        ens = load_ensemble(out)
        ens.calibrate(cohort, method=c["calibration"], threshold=c["threshold"],
                      target=c["target_sensitivity"], cache_dir=run.out / "cache",
                      progress=cfg["run"]["progress"])
        ens.save(cohort=cohort, n_resamples=c["bootstrap"] or 1000, seed=cfg["run"]["seed"])
    if ens.info["calibration"]["folds_without_validation"]:
        run.say(f"  {out.name}: no validation part (cv.val_fraction = 0): probabilities not "
                "recalibrated, threshold 0.5")
    elif any("not fitted" in str(w.message) for w in caught):
        run.say(f"  {out.name}: some calibrators were not fitted (see {out / 'ensemble.json'})")


def _bootstrap(cfg: Mapping[str, Any], result: Any) -> Any:
    """Table 2: bootstrap intervals of the prognosis metrics on the configured test fold."""
    if cfg["cv"]["bootstrap"] == 0:
        return None
    fold = cfg["cv"]["bootstrap_fold"]
    if fold not in result.folds:
        raise ConfigError(f"[cv] bootstrap_fold: {fold} is out of range; folds are "
                          f"0-{max(result.folds)}")
    ci = result.bootstrap(fold=fold, n_resamples=cfg["cv"]["bootstrap"], seed=cfg["run"]["seed"],
                          tasks=["prognosis"])
    return ci.drop(columns=["task"])


def _splits(run: _Run, cohort: Any) -> Any:
    from ichprog.data import make_splits

    cfg = run.cfg
    splits = make_splits(cohort, folds=cfg["cv"]["folds"], seed=cfg["run"]["seed"],
                         val_fraction=cfg["cv"]["val_fraction"])
    splits.save(run.out / "splits.json")
    return splits


def _write_results(folder: Path, results: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any],
                   bootstrap: bool) -> None:
    import pandas as pd

    # everything is computed before the first file is written (the bootstrap can fail)
    tables = {"metrics.csv": pd.concat([r["metrics"] for r in results], ignore_index=True),
              "predictions.csv": pd.concat([r["predictions"] for r in results],
                                           ignore_index=True)}
    hist = [r["history"] for r in results if len(r["history"])]
    if hist:
        tables["history.csv"] = pd.concat(hist, ignore_index=True)
    if bootstrap:
        cis = [c for c in (_bootstrap(cfg, r["result"]) for r in results
                           if "prognosis" in r["result"].preset.task_names) if c is not None]
        if cis:
            tables["bootstrap.csv"] = pd.concat(cis, ignore_index=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        write_csv(df, folder / name, checksum=True)


def _image_key(cfg: Mapping[str, Any], *extra: Any) -> dict[str, Any]:
    return _stage_key(cfg, "data", "preprocess", "model", "train") | {
        "cv": {k: cfg["cv"][k] for k in ("folds", "val_fraction")}, "extra": list(extra)}


def _stage_cv(run: _Run, cohort: Any, presets: Sequence[str]) -> None:
    cfg = run.cfg
    key = _image_key(cfg, list(presets), cfg["cv"]["bootstrap"], cfg["cv"]["bootstrap_fold"],
                     [cfg["cv"][k] for k in ("calibration", "threshold", "target_sensitivity")])
    with run.stage("cv", key) as todo:
        if not todo:
            return
        splits = _splits(run, cohort)
        results = []
        for name in presets:
            preset = _preset(cfg, name)
            _check_input_size(cfg, preset)
            run.manifest.labels[preset.name] = preset.label
            run.say(f"[cv] {preset.label}: {len(splits.folds)} folds")
            results.append(_cv_preset(run, cohort, preset, run.out / "cv" / preset.name, splits,
                                      ensemble=True))
        run.manifest.model_order = [_preset(cfg, n).name for n in presets]
        _write_results(run.out / "cv", results, cfg, bootstrap=True)


def _stage_ablation(run: _Run, cohort: Any) -> None:
    from ichprog.tasks import ablations

    cfg = run.cfg
    key = _image_key(cfg, cfg["ablation"])
    with run.stage("ablation", key) as todo:
        if not todo:
            return
        splits = _splits(run, cohort)
        configs = list(ablations(_preset(cfg, cfg["ablation"]["preset"])).values())
        limit = cfg["ablation"]["max_configs"]
        if limit:
            # keep the full model and the primary task alone first: the two ends of Fig. 2
            configs = ([configs[0], configs[-1]] + configs[1:-1])[:limit]
        results = []
        for preset in configs:
            _check_input_size(cfg, preset)
            run.manifest.labels[preset.name] = preset.label
            run.say(f"[ablation] {preset.label}")
            # a configuration also cross-validated by the cv stage reuses its trained folds
            same = run.out / "cv" / preset.name
            folder = run.out / "ablation" / preset.name
            if same.is_dir() and preset.name in _presets() \
                    and preset == _preset(cfg, preset.name):
                folder = same
            results.append(_cv_preset(run, cohort, preset, folder, splits))
        _write_results(run.out / "ablation", results, cfg, bootstrap=False)


def _stage_claims(run: _Run, cohort: Any) -> None:
    cfg = run.cfg
    c = cfg["claims"]
    if not c["run"]:
        return
    key = _image_key(cfg, c, cfg["cv"]["bootstrap"])
    with run.stage("claims", key) as todo:
        if not todo:
            return
        from ichprog.experiment import check_claims

        run.say(f"[claims] C1-C6 on {c['repeats']} x {cfg['cv']['folds']} folds"
                + (f", learning curve at n = {c['sizes']}" if c["sizes"] else ""))
        kwargs = _cv_kwargs(run)
        # the trunk of the cv stage's presets: the recipe must not replace it differently
        kwargs["recipe"] = "paper"
        kwargs["trunk"] = cfg["model"]["trunk"] or None
        res = check_claims(cohort, repeats=c["repeats"], folds=cfg["cv"]["folds"],
                           seed=cfg["run"]["seed"], val_fraction=cfg["cv"]["val_fraction"],
                           sizes=c["sizes"] or None, saliency_patients=c["saliency_patients"],
                           n_resamples=cfg["cv"]["bootstrap"] or 1000, out_dir=run.out / "cv",
                           cv_kwargs=kwargs, progress=cfg["run"]["progress"])
        res.save(run.out / "claims")
        write_csv(res.summary(), run.out / "claims.csv", checksum=True)
        if len(res.learning_curve):
            import matplotlib.pyplot as plt

            plt.close(res.plot_learning_curve(run.out / "claims" / "learning_curve.png"))
        run.manifest.claims = {"seconds": res.settings.get("seconds"),
                                  "verdicts": dict(zip(res.claims["claim"],
                                                       res.claims["verdict"]))}


def _load_fitted(folder: Path) -> Any:
    """A model saved by ``ichprog train`` or ``ichprog cv`` (:class:`ichprog.FittedModel`)."""
    from ichprog.experiment import FittedModel

    if not (folder / "fitted.json").is_file() and (folder / "model" / "fitted.json").is_file():
        folder = folder / "model"
    return FittedModel.load(folder)


def _pick_patients(ids: Sequence[str], labels: Mapping[str, int], n: int) -> list[str]:
    """Up to ``n`` patients, alternating poor and good prognosis, in fold order."""
    poor = [i for i in ids if labels[i] == 1]
    good = [i for i in ids if labels[i] == 0]
    out: list[str] = []
    while len(out) < n and (poor or good):
        for group in (poor, good):
            if group and len(out) < n:
                out.append(group.pop(0))
    return out


def _stage_saliency(run: _Run, cohort: Any) -> None:
    import pandas as pd

    cfg = run.cfg
    order = run.manifest.model_order
    key = _image_key(cfg, cfg["saliency"], order)
    with run.stage("saliency", key) as todo:
        if not todo:
            return
        from ichprog import saliency
        from ichprog.data import Splits, VolumeCache, load_volume

        split_path = run.out / "splits.json"
        if not order or not split_path.is_file():
            raise ConfigError(f"no cross-validated models in {run.out}; run 'ichprog cv --out "
                              f"{run.out}' first")
        fold_index = cfg["saliency"]["fold"]
        splits = Splits.load(split_path)
        if fold_index >= len(splits.folds):
            raise ConfigError(f"[saliency] fold: {fold_index} is out of range; the run has "
                              f"{len(splits.folds)} folds (0-{len(splits.folds) - 1})")
        fold = splits.folds[fold_index]
        labels = dict(zip(cohort.ids, cohort.labels.tolist()))
        ids = _pick_patients(fold.test, labels, cfg["saliency"]["n_patients"])
        models, pcfg = {}, None
        for name in order:
            fitted = _load_fitted(run.out / "cv" / name / f"fold_{fold_index:02d}")
            models[name], pcfg = fitted.model, fitted.preprocess
        assert pcfg is not None
        cache = VolumeCache(run.out / "cache", pcfg)
        volumes = {i: cache.get(cohort.image_path(i)) for i in ids}
        masks = {}
        for i in ids:
            mpath = cohort.mask_path(i)
            if mpath is not None:
                marr, maff = load_volume(mpath)
                masks[i] = saliency.mask_to_input_space(marr, maff, pcfg)
        out = run.out / "saliency"
        out.mkdir(parents=True, exist_ok=True)
        labels_txt = run.manifest.labels
        tables = []
        for method in cfg["saliency"]["methods"]:
            res = saliency.compute_maps(models, volumes, method=method, task="prognosis",
                                        target=1, threshold=0.5,
                                        progress=cfg["run"]["progress"])
            rows = {i: f"{'poor' if labels[i] else 'good'} prognosis ({i})" for i in ids}
            fig = saliency.plot_model_grid(volumes, res, masks=masks or None, row_labels=rows,
                                           model_labels={m: labels_txt.get(m, m) for m in order})
            save_figure(fig, out / f"{method}.png", dpi=100, bbox_inches="tight",
                        facecolor="white")
            if masks:
                brains = {i: saliency.brain_mask(v) for i, v in volumes.items() if i in masks}
                sc = saliency.lesion_scores({m: {i: res.maps[m][i] for i in masks}
                                             for m in res.maps}, masks, brain_masks=brains)
                sc.insert(0, "method", method)
                tables.append(sc)
        if tables:
            write_csv(pd.concat(tables, ignore_index=True), out / "lesion_scores.csv",
                      checksum=True)
        run.manifest.saliency = {"fold": fold_index, "patients": ids}

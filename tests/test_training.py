"""The training loop: accumulation, early stopping, checkpoints, resume, prediction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from ichprog.models import MultiTaskNet
from ichprog.tasks import MT_ORD_GCS_BIN_AGE, PROGNOSIS
from ichprog.training import (
    ArrayDataset,
    TrainConfig,
    _group_weights,
    _rng_from_tensors,
    _rng_to_tensors,
    load_checkpoint,
    predict_proba,
    read_sidecar,
    resolve_precision,
    targets_to_classes,
    train,
)

TINY = {"block_config": (1, 1, 1, 1)}
SHAPE = (32, 32, 32)


def make_dataset(n: int, seed: int = 0, preset=MT_ORD_GCS_BIN_AGE, signal: float = 0.0,
                 prefix: str = "p", shape: tuple[int, int, int] = SHAPE) -> ArrayDataset:
    """Random volumes with CTDataset items; ``signal`` brightens a cube in poor-prognosis cases."""
    rng = np.random.default_rng(seed)
    vols = rng.normal(size=(n, *shape)).astype(np.float32)
    classes = {t.name: rng.integers(0, t.n_classes, n) for t in preset}
    classes[preset.primary.name][: 2] = [0, 1]  # both classes present
    if signal:
        y = classes[preset.primary.name]
        vols[y == 1, 8:24, 8:24, 8:24] += signal
    targets = {t.name: t.loss_targets(classes[t.name]) for t in preset}
    return ArrayDataset(vols, ids=[f"{prefix}{i}" for i in range(n)], targets=targets)


def make_model(seed: int = 0, preset=MT_ORD_GCS_BIN_AGE, **kwargs) -> MultiTaskNet:
    torch.manual_seed(seed)
    return MultiTaskNet(preset, trunk="densenet_tiny", trunk_kwargs=kwargs or TINY)


def cfg(**kw) -> TrainConfig:
    base = {"max_epochs": 2, "batch_size": 4, "progress": False, "precision": "fp32"}
    base.update(kw)
    return TrainConfig(**base)


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- configuration --------------------------------------------------------------------------
def test_defaults_are_the_papers_recipe():
    c = TrainConfig()
    assert (c.lr, c.weight_decay, c.amsgrad) == (1e-3, 1e-4, True)
    assert (c.batch_size, c.accumulation_steps, c.patience, c.threshold) == (8, 3, 20, 0.5)
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("field,value", [("lr", 0.0), ("batch_size", 0), ("threshold", 1.0),
                                         ("precision", "fp8"), ("max_epochs", 0)])
def test_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == (torch.bfloat16, False)
    assert resolve_precision("fp32", cpu) == (None, False)
    with pytest.raises(ValueError, match="GPU"):
        resolve_precision("fp16", cpu)


# -- accumulation ---------------------------------------------------------------------------
def test_accumulation_groups_by_hand():
    # 20 samples, batches of 8 -> 8, 8, 4: one group of three batches, one step at the end
    assert _group_weights(20, 8, 3) == [(0.4, False), (0.4, False), (0.2, True)]
    # 5 batches of 4 with groups of 3: the trailing group of two batches is stepped too
    w = _group_weights(20, 4, 3)
    assert [s for _, s in w] == [False, False, True, False, True]
    assert [round(x, 6) for x, _ in w] == [0.333333] * 3 + [0.5, 0.5]


def test_accumulated_step_equals_one_large_batch(tmp_path):
    # Instance normalisation and no dropout make the loss a plain mean over samples, so three
    # accumulated batches of 2 must give the gradient of one batch of 6. AdamW's first moment
    # after one step is 0.1 x the gradient: compare it from the saved optimizer states (the
    # first update itself, about lr * sign(gradient), is too sensitive to rounding).
    from safetensors.torch import load_file

    ds = make_dataset(6, shape=(32, 32, 64))  # instance norm needs > 1 voxel at the end
    kw = {"block_config": (1, 1, 1, 1), "norm": "instance", "dropout_prob": 0.0}
    moments = []
    for bs, steps in ((2, 3), (6, 1)):
        out = tmp_path / f"bs{bs}"
        train(make_model(**kw), ds, ds, cfg(max_epochs=1, batch_size=bs, accumulation_steps=steps,
                                            patience=None), out_dir=out)
        state = load_file(str(out / read_sidecar(out)["state"]))
        moments.append({k: v for k, v in state.items() if k.endswith(".exp_avg")})
        assert float(state["optim.0.step"]) == 1.0
    assert moments[0].keys() == moments[1].keys() and len(moments[0]) > 10
    for k, m in moments[0].items():
        torch.testing.assert_close(m, moments[1][k], rtol=1e-3, atol=1e-7)


def test_no_gradient_left_unapplied(tmp_path):
    # 8 samples, batches of 2 -> 4 batches; groups of 3 -> 2 optimizer steps per epoch
    ds = make_dataset(8)
    train(make_model(), ds, ds, cfg(max_epochs=2, batch_size=2, accumulation_steps=3,
                                    patience=None), out_dir=tmp_path)
    from safetensors.torch import load_file

    side = read_sidecar(tmp_path)
    state = load_file(str(tmp_path / side["state"]))
    steps = {float(v) for k, v in state.items() if k.endswith(".step")}
    assert steps == {4.0}


# -- early stopping and metrics -------------------------------------------------------------
def test_validation_metrics_match_sklearn():
    tr, va = make_dataset(8, seed=1), make_dataset(10, seed=2, prefix="v")
    model = make_model()
    res = train(model, tr, va, cfg(max_epochs=1, patience=None))
    probs = predict_proba(model, va, precision="fp32")
    y = targets_to_classes(PROGNOSIS, va.targets["prognosis"])
    row = res.history.iloc[-1]
    assert row["val_prognosis_balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y, (probs["prognosis"][:, 0] >= 0.5).astype(int)))
    assert row["val_prognosis_auc"] == pytest.approx(roc_auc_score(y, probs["prognosis"][:, 0]))
    g = targets_to_classes(MT_ORD_GCS_BIN_AGE["gcs"], va.targets["gcs"])
    pred = (probs["gcs"] > 0.5).sum(axis=1)
    assert row["val_gcs_balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(g, pred, adjusted=False))
    assert row["val_score"] == row["val_prognosis_balanced_accuracy"]


def test_early_stopping_restores_the_best_weights(tmp_path):
    ds = make_dataset(8)
    snapshots = {}

    def keep(epoch, row):
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    model = make_model()
    # A learning rate this small cannot change a prediction: no epoch after the first improves.
    res = train(model, ds, ds, cfg(max_epochs=10, patience=2, lr=1e-12), callback=keep)
    assert res.stop_reason == "early_stopping"
    assert res.epochs_run == 3 and res.best_epoch == 1
    assert res.history["improved"].tolist() == [True, False, False]
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k]), k


# -- checkpoints ----------------------------------------------------------------------------
def test_checkpoint_files_are_safetensors_and_json(tmp_path):
    ds = make_dataset(8)
    res = train(make_model(), ds, ds, cfg(), out_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".sha256"))
    # the last epoch's checkpoint and the one before it (the fall-back on resume)
    assert names == [f"best-e{res.best_epoch:04d}.safetensors", "checkpoint.json",
                     "checkpoint.prev.json", "history.csv", "history.png",
                     "state-e0001.safetensors", "state-e0002.safetensors",
                     "weights-e0001.safetensors", "weights-e0002.safetensors"]
    records = sorted(p.name[:-7] for p in tmp_path.iterdir() if p.name.endswith(".sha256"))
    assert records == [n for n in names if n.endswith((".safetensors", ".json"))]
    side = json.loads((tmp_path / "checkpoint.json").read_text())
    assert side["epoch"] == 2 and side["finished"] is True
    assert side["config"]["lr"] == 1e-3 and len(side["config_hash"]) == 20
    assert side["state"] == "state-e0002.safetensors"
    assert side["monitor"] == "val_prognosis_balanced_accuracy"
    hist = pd.read_csv(tmp_path / "history.csv")
    for col in ("train_loss_prognosis", "train_loss_gcs", "train_loss_age", "val_gcs_qwk",
                "val_age_auc"):
        assert col in hist
    # the files open without pickle and hold the best weights
    clone = make_model(seed=5)
    load_checkpoint(tmp_path, clone, which="best")
    assert state_equal(clone, res.model)


def test_finished_run_is_reused_and_a_different_config_refused(tmp_path):
    ds = make_dataset(8)
    first = train(make_model(), ds, ds, cfg(max_epochs=1), out_dir=tmp_path)
    again = train(make_model(), ds, ds, cfg(max_epochs=1), out_dir=tmp_path)
    assert again.reused and not first.reused
    assert state_equal(first.model, again.model)
    with pytest.raises(ValueError, match=r"different configuration.*lr: 0.001 -> 0.01"):
        train(make_model(), ds, ds, cfg(max_epochs=1, lr=1e-2), out_dir=tmp_path)
    other = make_dataset(8, prefix="q")
    with pytest.raises(ValueError, match="train_data.ids"):
        train(make_model(), other, ds, cfg(max_epochs=1), out_dir=tmp_path)
    fresh = train(make_model(), ds, ds, cfg(max_epochs=1, lr=1e-2), out_dir=tmp_path,
                  overwrite=True)
    assert not fresh.reused and read_sidecar(tmp_path)["config"]["lr"] == 1e-2


class _Killer(torch.utils.data.Dataset):
    """Proxy that raises after ``limit`` items, like a process killed mid-epoch."""

    def __init__(self, ds, limit):
        self.ds, self.limit, self.count = ds, limit, 0

    def __getattr__(self, name):  # ids, config, augment, seed, set_epoch, ...
        return getattr(self.__dict__["ds"], name)

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        self.count += 1
        if self.count > self.limit:
            raise KeyboardInterrupt("killed")
        return self.ds[i]


def test_killed_mid_epoch_and_resumed_equals_uninterrupted(tmp_path):
    ds, val = make_dataset(10), make_dataset(6, seed=3, prefix="v")
    config = cfg(max_epochs=3, batch_size=4, accumulation_steps=2, patience=None)
    straight = train(make_model(), ds, val, config)
    # killed in the middle of the second epoch (10 items per epoch)
    killer = _Killer(ds, limit=14)
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), killer, val, config, out_dir=tmp_path)
    assert read_sidecar(tmp_path)["epoch"] == 1
    torch.manual_seed(12345)  # the resumed run must not depend on the global state it finds
    np.random.seed(7)  # noqa: NPY002
    resumed = train(make_model(), ds, val, config, out_dir=tmp_path)
    assert resumed.resumed_from == 1
    assert state_equal(resumed.model, straight.model)
    cols = [c for c in straight.history if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.history[cols], straight.history[cols])


def test_same_seed_same_result_and_another_seed_differs():
    ds = make_dataset(8)
    a, b, c = make_model(), make_model(), make_model()
    train(a, ds, ds, cfg(max_epochs=1))
    train(b, ds, ds, cfg(max_epochs=1))
    train(c, ds, ds, cfg(max_epochs=1, seed=1))
    assert state_equal(a, b)
    assert not state_equal(a, c)


def test_rng_state_round_trip():
    tensors, meta = _rng_to_tensors()
    first = (torch.rand(3), np.random.rand(3), __import__("random").random())  # noqa: NPY002
    _rng_from_tensors(tensors, meta)
    second = (torch.rand(3), np.random.rand(3), __import__("random").random())  # noqa: NPY002
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


# -- prediction and errors ------------------------------------------------------------------
def test_predict_proba_is_the_sigmoid_of_the_logits():
    ds = ArrayDataset(np.random.default_rng(0).normal(size=(5, *SHAPE)))
    model = make_model().eval()
    probs = predict_proba(model, ds, batch_size=2, precision="fp32")
    with torch.no_grad():
        logits = model(torch.stack([ds[i]["image"] for i in range(5)]))
    for name, p in probs.items():
        assert p.shape == (5, MT_ORD_GCS_BIN_AGE[name].n_outputs)
        np.testing.assert_allclose(p, torch.sigmoid(logits[name]).numpy(), rtol=1e-5)


def test_flip_tta_is_the_mean_probability_of_the_volume_and_its_mirror_image():
    vols = np.random.default_rng(1).normal(size=(5, *SHAPE)).astype(np.float32)
    plain = ArrayDataset(vols)
    mirror = ArrayDataset(np.ascontiguousarray(vols[..., ::-1]))
    model = make_model().eval()
    kw = {"batch_size": 2, "precision": "fp32"}
    tta = predict_proba(model, plain, tta="flip", **kw)
    a, b = predict_proba(model, plain, **kw), predict_proba(model, mirror, **kw)
    tta_of_mirror = predict_proba(model, mirror, tta="flip", **kw)
    for name in (t.name for t in MT_ORD_GCS_BIN_AGE):
        np.testing.assert_allclose(tta[name], 0.5 * (a[name] + b[name]), rtol=1e-5, atol=1e-7)
        # the same prediction for a scan and its mirror image
        np.testing.assert_allclose(tta_of_mirror[name], tta[name], rtol=1e-5, atol=1e-7)
        assert not np.allclose(a[name], b[name])  # the network itself is not symmetric
    with pytest.raises(ValueError, match="tta must be 'none' or 'flip'"):
        predict_proba(model, plain, tta="rotate", **kw)
    with pytest.raises(ValueError, match="TrainConfig.tta must be 'none' or 'flip'"):
        TrainConfig(tta="mirror")


def test_missing_targets_are_reported():
    ds = make_dataset(6)
    no_targets = ArrayDataset(ds.volumes, ids=ds.ids)
    with pytest.raises(ValueError, match="training dataset has no targets"):
        train(make_model(), no_targets, ds, cfg(max_epochs=1))
    partial = ArrayDataset(ds.volumes, ids=ds.ids, targets={"prognosis": ds.targets["prognosis"]})
    with pytest.raises(KeyError, match=r"lacks targets for task\(s\) \['gcs', 'age'\]"):
        train(make_model(), partial, ds, cfg(max_epochs=1))


def test_resume_with_the_augmented_ctdataset(tmp_path):
    # The real dataset of the library, augmentation on: a run killed mid-epoch and resumed ends
    # with the same weights as an uninterrupted one.
    from ichprog.data import CTDataset, PreprocessConfig, make_phantom_cohort

    cohort = make_phantom_cohort(8, seed=1, out_dir=tmp_path / "ph", shape=(12, 48, 48),
                                 progress=False)
    pre = PreprocessConfig(shape=(32, 32, 32), skull_strip=False)
    classes = cohort.targets(MT_ORD_GCS_BIN_AGE)
    targets = {t.name: t.loss_targets(classes[t.name]) for t in MT_ORD_GCS_BIN_AGE}
    train_ds = CTDataset(cohort, cohort.ids, pre, targets=targets, augment=True,
                         cache_dir=tmp_path / "cache", seed=4)
    val_ds = CTDataset(cohort, cohort.ids, pre, targets=targets, cache_dir=tmp_path / "cache")
    config = cfg(max_epochs=2, batch_size=3, accumulation_steps=2, patience=None,
                 precision="bf16")
    straight = train(make_model(), train_ds, val_ds, config)
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), _Killer(train_ds, limit=12), val_ds, config, out_dir=tmp_path / "r")
    resumed = train(make_model(), train_ds, val_ds, config, out_dir=tmp_path / "r")
    assert resumed.resumed_from == 1
    assert state_equal(resumed.model, straight.model)


def test_a_batch_of_one_sample_gets_a_hint():
    # 9 samples in batches of 4 leave one sample for the last batch; DenseNet's last
    # BatchNorm sees one value per channel at this tiny input size
    ds = make_dataset(9)
    with pytest.raises(ValueError, match="batch_size"):
        train(make_model(), ds, ds, cfg(max_epochs=1))


# -- schedule and the kept epoch ----------------------------------------------------------------
def test_onecycle_follows_torchs_schedule_and_select_last_keeps_the_last_epoch():
    ds, val = make_dataset(10), make_dataset(6, seed=3, prefix="v")
    config = cfg(max_epochs=3, batch_size=4, accumulation_steps=1, lr=5e-3,
                 schedule="onecycle", select="last", patience=None)
    res = train(make_model(), ds, val, config)
    # torch's own OneCycleLR stepped as often as the loop steps (3 batches per epoch)
    ref_opt = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=5e-3)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=5e-3, total_steps=9,
                                              pct_start=0.2)
    rates = [ref_opt.param_groups[0]["lr"]]  # the rate of each of the 9 optimizer steps
    for _ in range(8):
        ref_opt.step()
        ref.step()
        rates.append(ref_opt.param_groups[0]["lr"])
    # after each epoch: the rate of the next step; after the last, that of the last step
    np.testing.assert_allclose(res.history["lr"], [rates[3], rates[6], rates[8]], rtol=1e-12)
    assert res.history["lr"].iloc[-1] < 1e-5 < res.history["lr"].iloc[0]
    assert res.best_epoch == 3 and res.history["improved"].all()


def test_select_last_refuses_early_stopping():
    with pytest.raises(ValueError, match="select='best'"):
        TrainConfig(select="last", patience=5)
    with pytest.raises(ValueError, match="schedule must be"):
        TrainConfig(schedule="cosine")


def test_onecycle_killed_and_resumed_equals_uninterrupted(tmp_path):
    ds, val = make_dataset(10), make_dataset(6, seed=3, prefix="v")
    config = cfg(max_epochs=3, batch_size=4, accumulation_steps=1, schedule="onecycle",
                 select="last", patience=None)
    straight = train(make_model(), ds, val, config)
    killer = _Killer(ds, limit=14)
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), killer, val, config, out_dir=tmp_path)
    resumed = train(make_model(), ds, val, config, out_dir=tmp_path)
    assert resumed.resumed_from == 1
    assert state_equal(resumed.model, straight.model)
    np.testing.assert_allclose(resumed.history["lr"], straight.history["lr"], rtol=0)


def test_a_long_run_is_announced_after_its_first_epoch(monkeypatch):
    import ichprog.training as tr

    monkeypatch.setattr(tr.loop, "LONG_RUN_S", 0.0)
    ds, val = make_dataset(6), make_dataset(4, seed=3, prefix="v")
    with pytest.warns(UserWarning, match=r"remaining 1 epoch\(s\) will take about .*recipe='cpu'"):
        train(make_model(), ds, val, cfg(max_epochs=2, patience=None))
    assert tr._duration(5400) == "1.5 h" and tr._duration(3 * 86400) == "3.0 days"


def test_class_balance_weights_the_rare_targets():
    from ichprog.models import balanced_pos_weight, multitask_loss
    from ichprog.tasks import AGE_BINARY, GCS_ORDINAL

    targets = {"gcs": np.array([[0, 0]] * 6 + [[1, 0]] * 3 + [[1, 1]] * 1),
               "age": np.array([[1]] * 2 + [[0]] * 8)}
    w = balanced_pos_weight(targets, [GCS_ORDINAL, AGE_BINARY])
    assert w["gcs"].tolist() == [1.5, 9.0] and w["age"].tolist() == [4.0]
    # with these weights the positive and negative targets of each output weigh the same
    logits = {"gcs": torch.zeros(10, 2), "age": torch.zeros(10, 1)}
    tg = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in targets.items()}
    _, per_task = multitask_loss(logits, tg, [GCS_ORDINAL, AGE_BINARY], w)
    ln2 = float(np.log(2.0))
    assert float(per_task["age"]) == pytest.approx(ln2 * (2 * 4.0 + 8) / 10)
    # a dataset without targets cannot be balanced, and says so
    ds, val = make_dataset(6), make_dataset(4, seed=3, prefix="v")
    ds.targets = None
    with pytest.raises(ValueError, match="class_balance needs a training dataset"):
        train(make_model(), ds, val, cfg(max_epochs=1, class_balance=True))


def test_no_validation_part_needs_select_last():
    ds = make_dataset(6)
    empty = ArrayDataset(np.zeros((0, *SHAPE), np.float32), ids=[])
    res = train(make_model(), ds, empty, cfg(max_epochs=2, select="last", patience=None))
    assert res.best_epoch == 2 and not any(c.startswith("val_loss") for c in res.history)
    with pytest.raises(ValueError, match="empty validation dataset"):
        train(make_model(), ds, empty, cfg(max_epochs=1))

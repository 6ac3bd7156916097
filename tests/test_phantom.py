"""Tests of the phantom cohort: clinical model, renderer, files and loading."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression

from ichprog.data import schema
from ichprog.data.phantom import (
    HEMPHILL_MORTALITY,
    MASK_LABELS,
    REAL_GCS_COUNTS,
    SITES,
    TRUTH_COLUMNS,
    PhantomConfig,
    Tissue,
    ich_score,
    make_phantom_cohort,
    phantom_affine,
    phantom_table,
    render_phantom,
)

SMALL = (16, 64, 64)
LABEL = schema.LABEL_COLUMN


@pytest.fixture(scope="module")
def big_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    return phantom_table(20_000, seed=11)


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("phantom") / "cohort"
    cohort = make_phantom_cohort(6, seed=3, out_dir=out, shape=SMALL, progress=False)
    return out, cohort


def _patient(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"age": 70, "site": "lobar", "side": "right", "ivh": 0,
                               "volume_ml": 30.0, "midline_shift_mm": 5.0, "atrophy": 0.5}
    base.update(kw)
    return base


# ---------------------------------------------------------------------------------------------
# the clinical table and the risk model
# ---------------------------------------------------------------------------------------------
def test_table_has_the_public_schema() -> None:
    table, truth = phantom_table(300, seed=0)
    assert tuple(table.columns) == schema.COLUMNS
    assert table[schema.ID_COLUMN].tolist() == list(range(1, 301))
    assert not table.isna().any().any()
    for col in schema.BINARY_COLUMNS + (LABEL,):
        assert set(table[col].unique()) <= {0, 1}, col
    assert table["GCS"].between(3, 15).all() and (table["GCS"] % 1 == 0).all()
    assert table["Age"].between(18, 100).all()
    assert (table["OxSat"] <= 100).all()
    assert tuple(truth.columns) == TRUTH_COLUMNS
    assert (truth["label"].to_numpy() == table[LABEL].to_numpy()).all()
    assert (truth["gcs"].to_numpy() == table["GCS"].to_numpy()).all()
    assert set(truth["site"]) <= set(SITES)


def test_gcs_distribution_matches_the_public_cohort(big_table) -> None:
    table, _ = big_table
    counts = np.bincount(table["GCS"], minlength=16)[3:]
    share = counts / counts.sum()
    real = np.asarray(REAL_GCS_COUNTS) / sum(REAL_GCS_COUNTS)
    np.testing.assert_allclose(share, real, atol=0.012)
    # mild / moderate / severe: 116 / 84 / 61 of 261
    g = table["GCS"]
    severity = [(g >= 13).mean(), g.between(9, 12).mean(), (g <= 8).mean()]
    np.testing.assert_allclose(severity, np.array([116, 84, 61]) / 261, atol=0.015)


def test_label_rate_and_spearman_near_the_published_values(big_table) -> None:
    table, _ = big_table
    y = table[LABEL]
    assert abs(y.mean() - 162 / 261) < 0.02
    assert abs(stats.spearmanr(table["GCS"], y)[0] - (-0.34)) < 0.03
    assert abs(stats.spearmanr(table["Age"], y)[0] - 0.39) < 0.03


def test_hidden_lesion_distributions(big_table) -> None:
    _, truth = big_table
    assert 0.08 < truth["infratentorial"].mean() < 0.12
    assert 0.40 < truth["ivh"].mean() < 0.60
    assert 10.0 <= truth["volume_ml"].median() <= 15.0
    med = truth.groupby("site")["volume_ml"].median()
    assert med["lobar"] > med["deep"] > med["infratentorial"]
    assert truth["volume_ml"].mean() > truth["volume_ml"].median()  # right-skewed
    # log-normal within a site: deep bleeds without anticoagulants, median 10 mL, log-SD 0.9
    deep = np.log(truth.loc[(truth["site"] == "deep") & (truth["anticoagulant"] == 0),
                            "volume_ml"])
    assert np.exp(deep.median()) == pytest.approx(10.0, rel=0.05)
    assert deep.std() == pytest.approx(0.9, abs=0.05)  # slightly less: truncated at 100 mL
    assert abs(stats.skew(deep)) < 0.15
    assert abs(truth["age"].mean() - 72) < 1.5 and abs(truth["age"].std() - 14) < 1.5
    assert (truth.loc[truth["infratentorial"] == 1, "midline_shift_mm"] == 0).all()
    supra = truth[truth["infratentorial"] == 0]
    assert stats.spearmanr(supra["volume_ml"], supra["midline_shift_mm"])[0] > 0.999


def test_ich_score_hand_cases() -> None:
    # gcs, volume, ivh, infratentorial, age -> score, each point counted by hand
    cases = [
        (15, 10.0, 0, 0, 50, 0),
        (13, 29.9, 0, 0, 79, 0),
        (12, 30.0, 0, 0, 79, 2),
        (5, 5.0, 1, 0, 80, 3),
        (4, 29.9, 1, 0, 80, 4),
        (3, 35.0, 1, 1, 85, 6),
    ]
    got = ich_score(*[np.array([c[i] for c in cases]) for i in range(5)])
    assert got.tolist() == [c[5] for c in cases]
    with pytest.raises(ValueError, match="GCS"):
        ich_score([2], [1.0], [0], [0], [60])


def test_truth_ich_score_and_poor_rate_rises_with_it(big_table) -> None:
    table, truth = big_table
    g = truth["gcs"].to_numpy()
    points = ((g <= 4) * 2 + ((g >= 5) & (g <= 12)) + (truth["volume_ml"] >= 30)
              + truth["ivh"] + truth["infratentorial"] + (truth["age"] >= 80))
    assert (points.to_numpy() == truth["ich_score"].to_numpy()).all()
    by_score = truth.groupby("ich_score")["label"].agg(["mean", "size"])
    by_score = by_score[by_score["size"] >= 100]
    assert len(by_score) >= 5
    assert np.all(np.diff(by_score["mean"].to_numpy()) > 0)
    # poor outcome (death or dependency) is at least as frequent as Hemphill's 30-day mortality
    # from score 1 on, and nearly certain at 4-5
    for score, rate in by_score["mean"].items():
        if 1 <= score <= 3:
            assert rate >= HEMPHILL_MORTALITY[score]
    assert by_score["mean"].iloc[-1] > 0.9


def test_outcome_probability_is_the_documented_logistic_model(big_table) -> None:
    _, truth = big_table
    cfg = PhantomConfig()
    lin = (cfg.outcome_per_gcs_point * (15 - truth["gcs"])
           + cfg.outcome_gcs_3_4 * (truth["gcs"] <= 4)
           + cfg.outcome_per_decade * (truth["age"] - 72) / 10
           + cfg.image_signal * (cfg.outcome_per_doubling * np.log2(truth["volume_ml"] / 10)
                                 + cfg.outcome_ivh * truth["ivh"]
                                 + cfg.outcome_infratentorial * truth["infratentorial"]))
    intercept = truth["risk_logit"] - lin
    assert np.ptp(intercept) < 1e-9  # one intercept for everyone
    np.testing.assert_allclose(truth["outcome_probability"],
                               1 / (1 + np.exp(-truth["risk_logit"])), rtol=1e-12)
    assert abs(truth["outcome_probability"].mean() - cfg.target_poor_rate) < 0.01


def _fit_logistic(table: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    x = np.column_stack([15 - truth["gcs"], truth["gcs"] <= 4, (truth["age"] - 72) / 10,
                         np.log2(truth["volume_ml"] / 10), truth["ivh"], truth["infratentorial"]])
    model = LogisticRegression(C=1e6, max_iter=2000).fit(x, table[LABEL])
    return model.coef_[0]


def test_image_signal_is_recovered_by_logistic_regression() -> None:
    cfg = PhantomConfig()
    table, truth = phantom_table(30_000, seed=5)
    coef = _fit_logistic(table, truth)
    expected = [cfg.outcome_per_gcs_point, cfg.outcome_gcs_3_4, cfg.outcome_per_decade,
                cfg.outcome_per_doubling, cfg.outcome_ivh, cfg.outcome_infratentorial]
    np.testing.assert_allclose(coef, expected, atol=0.15)
    table0, truth0 = phantom_table(30_000, seed=5, config=PhantomConfig(image_signal=0.0))
    coef0 = _fit_logistic(table0, truth0)
    np.testing.assert_allclose(coef0[3:], 0.0, atol=0.12)  # image only through GCS
    assert abs(table0[LABEL].mean() - 0.62) < 0.02  # the intercept is recalibrated
    # the image factors still predict outcome through GCS
    assert stats.spearmanr(truth0["volume_ml"], table0[LABEL])[0] > 0.05


def test_mild_relations_of_other_columns(big_table) -> None:
    table, truth = big_table
    anticoag = table["Anticoagulant"] == 1
    assert truth.loc[anticoag, "volume_ml"].median() > 1.2 * truth.loc[~anticoag,
                                                                       "volume_ml"].median()
    assert table.loc[anticoag, "INR"].median() > 1.8 > table.loc[~anticoag, "INR"].median()
    assert stats.spearmanr(table["GCS"], table["Glucose"])[0] < -0.1
    assert 0.38 < table["Cause_head_trauma"].mean() < 0.48


def test_table_is_deterministic_per_seed() -> None:
    a = phantom_table(200, seed=4)
    b = phantom_table(200, seed=4)
    c = phantom_table(200, seed=5)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not a[0].equals(c[0])


def test_config_validation_and_round_trip() -> None:
    cfg = PhantomConfig(shape=(20, 96, 80), image_signal=2.0)
    assert PhantomConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for kwargs, word in [({"shape": (2, 64, 64)}, "shape"),
                         ({"site_probabilities": (0.5, 0.5, 0.5)}, "site_probabilities"),
                         ({"orientation": "XYZ"}, "orientation"),
                         ({"gcs_counts": (1, 2)}, "gcs_counts"),
                         ({"target_poor_rate": 1.0}, "target_poor_rate"),
                         ({"noise_hu": -1.0}, "noise_hu")]:
        with pytest.raises(ValueError, match=word):
            PhantomConfig(**kwargs)
    with pytest.raises(ValueError, match="positive integer"):
        phantom_table(0)


# ---------------------------------------------------------------------------------------------
# geometry and the renderer
# ---------------------------------------------------------------------------------------------
def test_affine_spacing_and_orientation() -> None:
    paper = phantom_affine(PhantomConfig(shape=(40, 512, 512)))
    assert nib.aff2axcodes(paper) == ("L", "P", "S")
    np.testing.assert_allclose(np.abs(np.diag(paper)[:3]), [230 / 512, 230 / 512, 4.5])
    small = PhantomConfig(shape=(16, 64, 80))
    aff = phantom_affine(small)
    np.testing.assert_allclose(np.abs(np.diag(aff)[:3]), [230 / 80, 230 / 64, 9.0])
    centre = aff @ np.array([(80 - 1) / 2, (64 - 1) / 2, (16 - 1) / 2, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    ras = phantom_affine(PhantomConfig(orientation="RAS"))
    assert nib.aff2axcodes(ras) == ("R", "A", "S")


@pytest.mark.parametrize("site", SITES)
def test_noise_free_tissues_stay_in_their_hu_ranges(site: str) -> None:
    cfg = PhantomConfig(shape=(24, 96, 96), noise_hu=0.0)
    scan = render_phantom(_patient(site=site, ivh=1, volume_ml=20.0), cfg, seed=2)
    # published ranges (METHOD-NOTES section 7), independent of the config table
    published = {Tissue.AIR: (-1000, -1000), Tissue.BONE: (700, 1400),
                 Tissue.GREY_MATTER: (37, 45), Tissue.WHITE_MATTER: (20, 30),
                 Tissue.CSF: (0, 15), Tissue.VENTRICLE: (0, 15), Tissue.OEDEMA: (10, 14),
                 Tissue.HEMATOMA: (50, 80)}
    present = set(np.unique(scan.tissue).tolist())
    must = {Tissue.AIR, Tissue.SOFT_TISSUE, Tissue.BONE, Tissue.CSF, Tissue.VENTRICLE,
            Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.CEREBELLUM, Tissue.BRAINSTEM,
            Tissue.OEDEMA, Tissue.HEMATOMA, Tissue.IVH}
    assert must <= present
    for t in present:
        values = scan.hu[scan.tissue == t]
        low, high = cfg.tissue_range(Tissue(t))
        assert values.min() >= np.floor(low) and values.max() <= np.ceil(high), Tissue(t).name
        if t in published:
            assert values.min() >= published[t][0] and values.max() <= published[t][1]
    grey = scan.hu[scan.tissue == Tissue.GREY_MATTER].mean()
    white = scan.hu[scan.tissue == Tissue.WHITE_MATTER].mean()
    assert grey - white > 7  # visible grey/white contrast
    clot = scan.hu[scan.tissue == Tissue.HEMATOMA]
    assert clot.std() > 1.0  # internal heterogeneity


def test_acquisition_noise_has_the_configured_sd() -> None:
    patient = _patient()
    clean = render_phantom(patient, PhantomConfig(shape=SMALL, noise_hu=0.0), seed=7)
    noisy = render_phantom(patient, PhantomConfig(shape=SMALL, noise_hu=4.0), seed=7)
    assert np.array_equal(clean.tissue, noisy.tissue)
    diff = noisy.hu.astype(float) - clean.hu.astype(float)
    assert diff.std() == pytest.approx(4.0, abs=0.15)
    assert abs(diff.mean()) < 0.1


def test_mask_holds_exactly_the_hematoma_volume() -> None:
    cfg = PhantomConfig(shape=SMALL)
    for site, vol in (("lobar", 60.0), ("deep", 8.0), ("infratentorial", 12.0)):
        n_vox = round(vol / cfg.voxel_ml)
        scan = render_phantom(_patient(site=site, volume_ml=n_vox * cfg.voxel_ml, ivh=1), cfg,
                              seed=1)
        assert int((scan.mask == 1).sum()) == n_vox
        assert scan.truth["volume_ml"] == pytest.approx(n_vox * cfg.voxel_ml)
        assert np.all(scan.tissue[scan.mask == 1] == Tissue.HEMATOMA)
        assert np.all(scan.tissue[scan.mask == 2] == Tissue.IVH)
        assert (scan.mask == 2).sum() > 0


# ---------------------------------------------------------------------------------------------
# the lesions of head trauma
# ---------------------------------------------------------------------------------------------
def test_traumatic_patients_get_a_subdural_hematoma_and_contusions() -> None:
    from scipy import ndimage

    cfg = PhantomConfig(shape=(24, 96, 96))
    spacing = np.abs(np.diag(phantom_affine(cfg))[:3])
    for seed in range(4):
        scan = render_phantom(_patient(traumatic=1, ivh=1), cfg, seed=seed)
        sdh = scan.mask == MASK_LABELS["subdural"]
        contusion = scan.mask == MASK_LABELS["contusion"]
        assert scan.truth["sdh_volume_ml"] == pytest.approx(sdh.sum() * cfg.voxel_ml)
        assert scan.truth["contusion_volume_ml"] == pytest.approx(contusion.sum() * cfg.voxel_ml)
        assert 2.0 < scan.truth["sdh_volume_ml"] < 120.0
        assert contusion.sum() > 0
        # the hematoma and the IVH are untouched; every blood voxel has one label
        assert int((scan.mask == 1).sum()) == round(30.0 / cfg.voxel_ml)
        assert np.all(scan.tissue[scan.mask == 2] == Tissue.IVH)
        assert set(np.unique(scan.tissue[sdh])) <= {Tissue.SUBDURAL, Tissue.SUBDURAL_SWIRL}
        assert np.all(scan.tissue[contusion] == Tissue.CONTUSION)
        # mixed density: an acute clot with hypodense parts, both in their HU ranges
        clot = scan.hu[scan.tissue == Tissue.SUBDURAL].astype(float)
        swirl = scan.hu[scan.tissue == Tissue.SUBDURAL_SWIRL].astype(float)
        assert swirl.size > 0.05 * sdh.sum()
        assert 50 <= np.median(clot) <= 80 and 18 <= np.median(swirl) <= 40
        # a crescent under the skull: no subdural voxel is more than 10 mm (+ a voxel) from bone
        to_bone = ndimage.distance_transform_edt(scan.tissue != Tissue.BONE, sampling=spacing)
        assert to_bone[sdh].max() <= 10.0 + spacing.max()
        # one side only: the falx stops it (world x of every voxel has one sign)
        world_x = (scan.affine @ np.c_[np.argwhere(sdh), np.ones(sdh.sum())].T)[0]
        assert (world_x > 0).all() or (world_x < 0).all()


def test_trauma_lesions_change_nothing_else_in_the_scan() -> None:
    cfg = PhantomConfig(shape=SMALL)
    plain = render_phantom(_patient(traumatic=0), cfg, seed=5)
    trauma = render_phantom(_patient(traumatic=1), cfg, seed=5)
    switched_off = render_phantom(_patient(traumatic=1), PhantomConfig(
        shape=SMALL, trauma_lesions=False), seed=5)
    assert np.array_equal(switched_off.hu, plain.hu)
    assert np.array_equal(switched_off.mask, plain.mask)
    assert plain.mask.max() == 2 or plain.mask.max() == 1
    same = trauma.tissue == plain.tissue
    assert same.mean() > 0.9
    assert np.array_equal(trauma.hu[same], plain.hu[same])
    assert set(np.unique(trauma.mask[~same])) <= {0, *MASK_LABELS.values()}


def test_trauma_follows_the_table_and_leaves_the_risk_model_alone() -> None:
    table, truth = phantom_table(400, seed=2)
    assert np.array_equal(truth["traumatic"], table["Cause_head_trauma"])
    table_off, truth_off = phantom_table(400, seed=2, config=PhantomConfig(trauma_lesions=False))
    pd.testing.assert_frame_equal(table, table_off)
    pd.testing.assert_frame_equal(truth, truth_off)


def test_a_configuration_without_the_traumatic_tissues_still_loads() -> None:
    old = PhantomConfig().to_dict()
    old["tissue_hu"] = [row for row in old["tissue_hu"]
                        if row[0] not in ("SUBDURAL", "SUBDURAL_SWIRL", "CONTUSION")]
    old.pop("trauma_lesions")
    assert PhantomConfig.from_dict(old) == PhantomConfig()


def test_lesion_site_side_and_compartment_follow_the_affine() -> None:
    cfg = PhantomConfig(shape=(24, 96, 96))
    centroids = {}
    for site in SITES:
        for side in ("left", "right"):
            scan = render_phantom(_patient(site=site, side=side, volume_ml=15.0), cfg, seed=3)
            ijk = np.argwhere(scan.mask == 1).mean(axis=0)
            world = scan.affine @ np.append(ijk, 1.0)
            centroids[site, side] = world[:3]
            # RAS world: x > 0 is the patient's right
            assert np.sign(world[0]) == (1 if side == "right" else -1), (site, side)
            ventricles = np.argwhere(scan.tissue == Tissue.VENTRICLE).mean(axis=0)
            vz = (scan.affine @ np.append(ventricles, 1.0))[2]
            if site == "infratentorial":
                assert world[2] < vz - 20  # below the tentorium, behind the brainstem
                assert world[1] < -25
            else:
                assert world[2] > vz - 30


def test_mass_effect_shifts_and_compresses_the_ventricles() -> None:
    cfg = PhantomConfig(shape=(24, 128, 128), noise_hu=0.0)
    big = _patient(site="deep", side="right", volume_ml=60.0, atrophy=0.3)

    def ventricle_x(shift: float) -> tuple[float, int, int]:
        scan = render_phantom({**big, "midline_shift_mm": shift}, cfg, seed=5)
        vox = np.argwhere(scan.tissue == Tissue.VENTRICLE)
        x = (scan.affine @ np.column_stack([vox, np.ones(len(vox))]).T)[0]
        return float(x.mean()), int((x > 1).sum()), int((x < -1).sum())

    x0, _, _ = ventricle_x(0.0)
    x10, right, left = ventricle_x(10.0)
    assert x10 < x0 - 2.0  # pushed towards the patient's left
    assert right < left  # the hematoma's side is compressed


def test_atrophy_widens_csf_spaces() -> None:
    cfg = PhantomConfig(shape=SMALL, noise_hu=0.0)
    young = render_phantom(_patient(atrophy=0.0), cfg, seed=9)
    old = render_phantom(_patient(atrophy=1.0), cfg, seed=9)
    for t in (Tissue.VENTRICLE, Tissue.CSF):
        assert (old.tissue == t).sum() > 1.3 * (young.tissue == t).sum()


def test_render_validates_its_patient() -> None:
    with pytest.raises(ValueError, match="site"):
        render_phantom(_patient(site="frontal"), PhantomConfig(shape=SMALL))
    with pytest.raises(ValueError, match="atrophy"):
        render_phantom({k: v for k, v in _patient().items() if k != "atrophy"})
    with pytest.raises(ValueError, match="does not fit"):
        render_phantom(_patient(site="infratentorial", volume_ml=400.0),
                       PhantomConfig(shape=SMALL))


# ---------------------------------------------------------------------------------------------
# files, determinism and loading through the data layer
# ---------------------------------------------------------------------------------------------
def test_files_follow_the_public_layout(cohort_dir) -> None:
    out, cohort = cohort_dir
    table = pd.read_csv(out / "clinical.csv")
    assert tuple(table.columns) == schema.COLUMNS
    truth = pd.read_csv(out / "phantom_truth.csv")
    ref_table, ref_truth = phantom_table(6, seed=3, config=PhantomConfig(shape=SMALL))
    pd.testing.assert_frame_equal(table, ref_table, check_dtype=False)
    np.testing.assert_allclose(truth["volume_ml"], ref_truth["volume_ml"], rtol=1e-9)
    meta = json.loads((out / "phantom_config.json").read_text())
    assert meta["n"] == 6 and meta["seed"] == 3
    assert PhantomConfig.from_dict(meta["config"]) == PhantomConfig(shape=SMALL)
    for pid, label in zip(table[schema.ID_COLUMN], table[LABEL]):
        folder = "POOR_PROGNOSIS" if label == 1 else "GOOD_PROGNOSIS"
        scan = nib.load(out / folder / f"{pid}.nii.gz")
        mask = nib.load(out / "masks" / f"{pid}_mask.nii.gz")
        assert scan.shape == (64, 64, 16)  # (W, H, D)
        assert scan.get_data_dtype() == np.int16 and mask.get_data_dtype() == np.uint8
        np.testing.assert_allclose(scan.affine, mask.affine)
        assert nib.aff2axcodes(scan.affine) == ("L", "P", "S")
        m = np.asarray(mask.dataobj)
        row = truth[truth["PatientID"] == pid].iloc[0]
        voxel_ml = float(np.prod(scan.header.get_zooms())) / 1000
        assert (m == 1).sum() * voxel_ml == pytest.approx(row["volume_ml"], rel=1e-6)
        assert (m == 2).sum() * voxel_ml == pytest.approx(row["ivh_volume_ml"], rel=1e-6,
                                                          abs=1e-9)
        assert ((m == 2).sum() > 0) == bool(row["ivh"])
        hu = np.asarray(scan.dataobj)
        assert hu.min() <= -990 and hu.max() >= 700  # air and bone
        assert np.median(hu[m == 1]) > 50


def test_cohort_loads_through_the_data_layer(cohort_dir) -> None:
    from ichprog.data import load_cohort, load_volume

    out, cohort = cohort_dir
    loaded = load_cohort(out / "clinical.csv", image_dir=out, mask_dir=out / "masks")
    assert loaded.ids == cohort.ids == [str(i) for i in range(1, 7)]
    pd.testing.assert_frame_equal(loaded.table, cohort.table)
    assert loaded.labels.tolist() == cohort.labels.tolist()
    assert {k: v.resolve() for k, v in loaded.mask_paths.items()} == {
        k: v.resolve() for k, v in cohort.mask_paths.items()}
    array, affine = load_volume(cohort.image_paths["1"])
    assert array.shape == (64, 64, 16) and array.dtype == np.int16
    canonical = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    assert nib.aff2axcodes(canonical.affine) == ("R", "A", "S")


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, cohort_dir) -> None:
    out, _ = cohort_dir
    again = make_phantom_cohort(6, seed=3, out_dir=tmp_path / "a", shape=SMALL, progress=False)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.root) for p in again.root.rglob("*")
                           if p.is_file())
    for rel in files:
        assert (out / rel).read_bytes() == (again.root / rel).read_bytes(), rel
    other = make_phantom_cohort(6, seed=4, out_dir=tmp_path / "b", shape=SMALL, progress=False)
    assert (other.root / "clinical.csv").read_bytes() != (out / "clinical.csv").read_bytes()
    assert (other.root / "masks" / "1_mask.nii.gz").read_bytes() != (
        out / "masks" / "1_mask.nii.gz").read_bytes()


def test_make_phantom_cohort_guards(tmp_path: Path, cohort_dir) -> None:
    out, _ = cohort_dir
    with pytest.raises(FileExistsError, match="overwrite"):
        make_phantom_cohort(2, out_dir=out, shape=SMALL, progress=False)
    with pytest.raises(TypeError, match="unknown PhantomConfig"):
        make_phantom_cohort(2, out_dir=tmp_path, shape=SMALL, progress=False, colour="red")
    c = make_phantom_cohort(2, out_dir=tmp_path, shape=SMALL, progress=False, image_signal=3.0)
    meta = json.loads((tmp_path / "phantom_config.json").read_text())
    assert meta["config"]["image_signal"] == 3.0 and len(c) == 2


def test_relative_out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cohort = make_phantom_cohort(2, seed=0, out_dir="rel", shape=SMALL, progress=False)
    assert cohort.root == tmp_path / "rel"
    assert all(p.is_file() and p.is_relative_to(tmp_path / "rel")
               for p in cohort.image_paths.values())


def test_overwrite_leaves_no_stale_patient(tmp_path: Path) -> None:
    from ichprog.data import load_cohort

    make_phantom_cohort(5, seed=0, out_dir=tmp_path, shape=SMALL, progress=False)
    (tmp_path / "notes.txt").write_text("kept")
    make_phantom_cohort(3, seed=1, out_dir=tmp_path, shape=SMALL, progress=False,
                        overwrite=True)
    scans = sorted(p.name for p in tmp_path.rglob("*.nii.gz"))
    assert len(scans) == 6  # 3 scans + 3 masks
    assert (tmp_path / "notes.txt").read_text() == "kept"
    loaded = load_cohort(tmp_path / "clinical.csv", image_dir=tmp_path,
                         mask_dir=tmp_path / "masks")
    assert loaded.ids == ["1", "2", "3"]

"""Cross-validation splits of the paper's protocol, and random oversampling.

:func:`make_splits` draws a stratified k-fold split on the prognosis label (shuffled with a seed)
and, inside each fold's training part, a stratified validation split (10 % by default). The
result is a :class:`Splits` of :class:`Fold` values holding patient IDs, which can be saved to and
reloaded from JSON. :func:`oversample` balances the classes of a training part by drawing
minority-class patients again with replacement (the trainers apply it to the training part only,
after the split, so no patient leaks into validation or test).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ichprog._util import IntegrityError, derive_seed, read_text_verified, write_text

__all__ = ["Fold", "Splits", "make_splits", "oversample"]

_FORMAT = "ichprog.splits/1"


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: patient IDs of the training, validation and test parts.

    Parameters
    ----------
    index
        Fold number, from 0.
    train, val, test
        Patient IDs, each in cohort order; the three parts are disjoint.
    """

    index: int
    train: list[str]
    val: list[str]
    test: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"index", "train", "val", "test"}``."""
        return {"index": self.index, "train": list(self.train), "val": list(self.val),
                "test": list(self.test)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fold:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["index"]), [str(i) for i in d["train"]], [str(i) for i in d["val"]],
                   [str(i) for i in d["test"]])


@dataclass(frozen=True)
class Splits:
    """The folds of one cross-validation, with the settings that produced them.

    Parameters
    ----------
    folds
        One :class:`Fold` per fold; the test parts partition ``ids``.
    ids
        All patient IDs, in cohort order.
    labels
        Prognosis label of each ID (``ids`` order).
    seed, val_fraction
        Settings of :func:`make_splits`.
    """

    folds: list[Fold]
    ids: list[str]
    labels: list[int]
    seed: int = 0
    val_fraction: float = 0.1
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        return len(self.folds)

    def __iter__(self) -> Iterator[Fold]:
        return iter(self.folds)

    def __getitem__(self, i: int) -> Fold:
        return self.folds[i]

    @property
    def n_folds(self) -> int:
        """Number of folds."""
        return len(self.folds)

    def validate(self) -> None:
        """Check that each fold's parts are disjoint, cover all IDs, and that the test parts
        partition the IDs. Raises ``ValueError`` naming the fold and patient otherwise."""
        all_ids = list(self.ids)
        if len(set(all_ids)) != len(all_ids):
            raise ValueError("Splits: duplicated patient IDs in ids")
        if len(self.labels) != len(all_ids):
            raise ValueError(
                f"Splits: {len(self.labels)} labels for {len(all_ids)} patient IDs"
            )
        universe = set(all_ids)
        seen_test: dict[str, int] = {}
        for fold in self.folds:
            parts = {"train": fold.train, "val": fold.val, "test": fold.test}
            union: set[str] = set()
            for name, part in parts.items():
                if len(set(part)) != len(part):
                    raise ValueError(f"fold {fold.index}: duplicated patient IDs in {name}")
                overlap = union & set(part)
                if overlap:
                    raise ValueError(
                        f"fold {fold.index}: patient(s) {sorted(overlap)[:5]} in {name} and in "
                        "another part"
                    )
                union |= set(part)
            if union != universe:
                missing = sorted(universe - union)[:5]
                extra = sorted(union - universe)[:5]
                raise ValueError(
                    f"fold {fold.index}: parts do not cover the cohort (missing {missing}, "
                    f"unknown {extra})"
                )
            for pid in fold.test:
                if pid in seen_test:
                    raise ValueError(
                        f"patient {pid!r} is in the test part of folds {seen_test[pid]} and "
                        f"{fold.index}"
                    )
                seen_test[pid] = fold.index
        if self.folds and len(seen_test) != len(universe):
            never = sorted(universe - set(seen_test))[:5]
            raise ValueError(f"patient(s) {never} are never in a test part")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation (see :meth:`save`)."""
        return {
            "format": _FORMAT,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "n_folds": self.n_folds,
            "ids": list(self.ids),
            "labels": [int(v) for v in self.labels],
            "meta": dict(self.meta),
            "folds": [f.to_dict() for f in self.folds],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Splits:
        """Inverse of :meth:`to_dict`; validates the folds."""
        if d.get("format") != _FORMAT:
            raise ValueError(f"not an ichprog splits file (format {d.get('format')!r})")
        return cls(
            folds=[Fold.from_dict(f) for f in d["folds"]],
            ids=[str(i) for i in d["ids"]],
            labels=[int(v) for v in d["labels"]],
            seed=int(d["seed"]),
            val_fraction=float(d["val_fraction"]),
            meta=dict(d.get("meta", {})),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the splits to a JSON file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(self.to_dict(), indent=1), checksum=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Splits:
        """Read splits written by :meth:`save`."""
        path = Path(path)
        try:
            d = json.loads(read_text_verified(path))
        except IntegrityError:
            raise
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read splits from {path}: {exc}") from exc
        try:
            return cls.from_dict(d)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def __repr__(self) -> str:
        sizes = ", ".join(f"{len(f.train)}/{len(f.val)}/{len(f.test)}" for f in self.folds[:3])
        more = ", ..." if len(self.folds) > 3 else ""
        return (
            f"Splits(n_folds={self.n_folds}, n={len(self.ids)}, seed={self.seed}, "
            f"val_fraction={self.val_fraction}, train/val/test=[{sizes}{more}])"
        )


def _ids_and_labels(cohort: Any, labels: Any) -> tuple[list[str], np.ndarray]:
    if labels is None:
        if hasattr(cohort, "ids") and hasattr(cohort, "labels"):
            ids = [str(i) for i in cohort.ids]
            lab = np.asarray(cohort.labels)
        elif hasattr(cohort, "columns"):  # a clinical table (DataFrame)
            from ichprog.data.schema import ID_COLUMN, LABEL_COLUMN

            if LABEL_COLUMN not in cohort.columns:
                raise ValueError(f"make_splits: the table has no {LABEL_COLUMN!r} column")
            table = cohort.set_index(ID_COLUMN) if ID_COLUMN in cohort.columns else cohort
            ids = [str(i) for i in table.index]
            lab = np.asarray(table[LABEL_COLUMN].to_numpy())
        elif hasattr(cohort, "index") and hasattr(cohort, "to_numpy"):  # a pandas Series
            ids = [str(i) for i in cohort.index]
            lab = np.asarray(cohort.to_numpy())
        else:
            raise TypeError(
                "make_splits needs a Cohort, a pandas Series of labels indexed by patient ID, "
                "or ids together with labels="
            )
    else:
        ids = [str(i) for i in cohort]
        lab = np.asarray(labels)
    if lab.shape != (len(ids),):
        raise ValueError(f"{lab.size} labels for {len(ids)} patient IDs")
    if len(set(ids)) != len(ids):
        raise ValueError("duplicated patient IDs")
    return ids, lab


def make_splits(
    cohort: Any,
    folds: int = 10,
    seed: int = 0,
    val_fraction: float = 0.1,
    *,
    labels: Sequence[int] | None = None,
) -> Splits:
    """Stratified k-fold cross-validation with a stratified validation split in each fold.

    Parameters
    ----------
    cohort
        A :class:`ichprog.data.Cohort` (stratified on its prognosis label), a clinical table
        (DataFrame with the label column, indexed by or holding ``PatientID``), a pandas Series
        of labels indexed by patient ID, or a sequence of IDs together with ``labels``.
    folds
        Number of folds (``>= 2``, at most the size of the smallest class).
    seed
        Seed of the shuffled k-fold split; each fold's validation split uses a seed derived from
        it and the fold index. The same seed gives the same splits.
    val_fraction
        Share of each training part held out for validation (early stopping), stratified;
        ``0`` for no validation part.
    labels
        Class labels when ``cohort`` is a sequence of IDs.

    Returns
    -------
    Splits
        ``splits.folds[k]`` is a :class:`Fold` with ``train``, ``val`` and ``test`` ID lists in
        cohort order.

    Raises
    ------
    ValueError
        ``folds`` out of range (for example more folds than patients of the smallest class), a
        class with a single patient, or ``val_fraction`` outside ``[0, 1)`` or too small/large
        for a stratified split.

    Examples
    --------
    >>> from ichprog.data import make_splits
    >>> ids = [f"p{i}" for i in range(20)]
    >>> splits = make_splits(ids, folds=5, seed=0, labels=[0] * 8 + [1] * 12)
    >>> [len(f.test) for f in splits.folds]
    [4, 4, 4, 4, 4]
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    ids, lab = _ids_and_labels(cohort, labels)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if not (0.0 <= float(val_fraction) < 1.0):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    classes, counts = np.unique(lab, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"stratified splits need two classes; every label is {classes.tolist()}")
    smallest = int(counts.min())
    if folds > smallest:
        cls = classes[int(np.argmin(counts))]
        raise ValueError(
            f"folds={folds} is larger than the smallest class (label {cls}: {smallest} "
            f"patients); use at most {smallest} folds"
        )
    skf = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=int(seed) % 2**32)
    out: list[Fold] = []
    for k, (train_idx, test_idx) in enumerate(skf.split(np.zeros(len(ids)), lab)):
        val_idx = np.array([], dtype=int)
        if val_fraction > 0:
            tr_classes, tr_counts = np.unique(lab[train_idx], return_counts=True)
            if tr_counts.min() < 2:
                c = tr_classes[int(np.argmin(tr_counts))]
                raise ValueError(
                    f"fold {k}: the training part holds {int(tr_counts.min())} patient(s) of "
                    f"label {c}, too few for a stratified validation split (at least 2); use "
                    "fewer folds or val_fraction=0"
                )
            n_val = int(np.ceil(val_fraction * len(train_idx)))
            if n_val < len(classes) or len(train_idx) - n_val < len(classes):
                raise ValueError(
                    f"fold {k}: val_fraction={val_fraction} of {len(train_idx)} training "
                    f"patients gives {n_val} validation patients, too few or too many for a "
                    f"stratified split of {len(classes)} classes"
                )
            try:
                train_idx, val_idx = train_test_split(
                    train_idx,
                    test_size=n_val,
                    stratify=lab[train_idx],
                    random_state=derive_seed(seed, k, bits=32),
                )
            except ValueError as exc:
                raise ValueError(f"fold {k}: stratified validation split failed: {exc}") from exc
        out.append(
            Fold(
                index=k,
                train=[ids[i] for i in np.sort(train_idx)],
                val=[ids[i] for i in np.sort(val_idx)],
                test=[ids[i] for i in np.sort(test_idx)],
            )
        )
    return Splits(folds=out, ids=ids, labels=[int(v) for v in lab], seed=int(seed),
                  val_fraction=float(val_fraction))


def oversample(ids: Sequence[Any], labels: Sequence[Any], seed: int = 0) -> list[str]:
    """Random oversampling: draw patients of the smaller classes again until classes balance.

    Every class is brought up to the size of the largest one by drawing its own patients with
    replacement (with a numpy generator seeded by ``seed``). Apply it to a training part only.

    Parameters
    ----------
    ids
        Patient IDs of the training part.
    labels
        Class label of each ID.
    seed
        Seed of the draws.

    Returns
    -------
    list of str
        The original IDs in their order, followed by the extra draws (so the result may repeat
        IDs; shuffle it when batching). With a single class the IDs are returned unchanged.

    Raises
    ------
    ValueError
        ``ids`` and ``labels`` differ in length, or ``ids`` repeat.

    Examples
    --------
    >>> from ichprog.data import oversample
    >>> out = oversample(["a", "b", "c", "d"], [0, 1, 1, 1], seed=0)
    >>> len(out), out[:4], out.count("a")
    (6, ['a', 'b', 'c', 'd'], 3)
    """
    id_list = [str(i) for i in ids]
    lab = np.asarray(labels)
    if lab.ndim != 1 or len(lab) != len(id_list):
        raise ValueError(f"oversample: {lab.size} labels for {len(id_list)} patient IDs")
    if len(set(id_list)) != len(id_list):
        raise ValueError("oversample: patient IDs repeat; pass each patient once")
    if not id_list:
        return []
    classes, counts = np.unique(lab, return_counts=True)
    target = int(counts.max())
    rng = np.random.default_rng(seed)
    extra: list[str] = []
    for cls, n in zip(classes, counts):
        if n == target:
            continue
        members = np.flatnonzero(lab == cls)
        draws = rng.choice(members, size=target - int(n), replace=True)
        extra.extend(id_list[i] for i in draws)
    return id_list + extra

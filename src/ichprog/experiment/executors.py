"""Where the jobs of an experiment run: in this process, one after the other
(:class:`SerialExecutor`), or as tasks on a Ray cluster (:class:`RayExecutor`).

A job is one (configuration, fold) of a cross-validation or an ablation. It is described by a
self-contained, picklable value (the cohort's paths and clinical table, the settings, the fold's
patients, seed and output folder), and run by a plain module-level function that writes its
results into the fold's folder of the output folder (``fold_XX/``) and returns them. Nothing else
travels, so a job can run on any node of a cluster and be run again there after a failure: a
retried job resumes from the fold's last training checkpoint.

:func:`~ichprog.cross_validate` and :func:`~ichprog.ablation` take ``executor="serial"`` (the
default), ``executor="ray"`` (a :class:`RayExecutor` with its defaults) or an :class:`Executor`
object. See the guide "Running on a cluster" (``docs/distributed.md``) for the storage rules.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ichprog._extras import require_extra

__all__ = ["EXECUTORS", "Executor", "RayExecutor", "SerialExecutor", "as_executor"]

J = TypeVar("J")
R = TypeVar("R")

#: The executor names :func:`as_executor` understands.
EXECUTORS = ("serial", "ray")


class Executor(abc.ABC):
    """Runs independent jobs and returns their results in the order of the jobs.

    Subclasses implement :meth:`map`. ``in_process`` tells the caller whether the jobs run in
    the calling process (then progress bars inside a job are shown).
    """

    #: Whether the jobs run in the calling process.
    in_process: bool = False

    @abc.abstractmethod
    def map(self, fn: Callable[[J], R], jobs: Sequence[J], *, progress: bool = False,
            desc: str = "jobs") -> list[R]:
        """``[fn(job) for job in jobs]``, wherever the executor runs them.

        Parameters
        ----------
        fn
            A module-level function (it may be pickled and sent to another process).
        jobs
            Picklable job descriptions.
        progress
            Show a progress bar of finished jobs.
        desc
            The progress bar's label.

        Returns
        -------
        list
            One result per job, in the order of ``jobs``. The first job that fails raises its
            error (after the executor's retries).
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SerialExecutor(Executor):
    """Runs the jobs one after the other in the calling process (the default executor)."""

    in_process = True

    def map(self, fn: Callable[[J], R], jobs: Sequence[J], *, progress: bool = False,
            desc: str = "jobs") -> list[R]:
        from tqdm.auto import tqdm

        return [fn(job) for job in tqdm(list(jobs), desc=desc, unit="job",
                                        disable=not progress)]


class RayExecutor(Executor):
    """Runs every job as one `Ray <https://docs.ray.io>`_ task (needs ``ichprog[ray]``).

    Parameters
    ----------
    address
        The cluster to connect to (``"auto"``, ``"ray://head:10001"``, ...); ``None`` starts a
        local Ray instance on this machine, or uses the one already started with
        ``ray.init``. Ray is initialised only when it is not yet.
    num_cpus
        CPUs Ray reserves for each task (fractions allowed).
    num_gpus
        GPUs Ray reserves for each task; fractions (``0.5``) put several tasks on one GPU.
    max_retries
        How many times Ray runs a task again after its worker process or node died (a killed
        worker, a lost node). A retried fold resumes from its last checkpoint. Errors raised by
        the job itself are not retried: they are reported at once.
    threads
        PyTorch CPU threads inside each task (``torch.set_num_threads``); default ``num_cpus``
        rounded down, at least 1, so that tasks sharing a node do not oversubscribe it.
    init_kwargs
        More arguments of ``ray.init`` when this executor starts Ray (e.g.
        ``include_dashboard=False``, ``runtime_env``).

    Notes
    -----
    Every task writes into the output folder of the experiment, so on a cluster of several nodes
    that folder (and the images and volume cache it reads) must be on storage every node sees
    under the same path; see the guide "Running on a cluster".
    """

    def __init__(self, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
                 max_retries: int = 2, *, threads: int | None = None,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        require_extra("ichprog.experiment.RayExecutor", "ray")
        if not num_cpus >= 0:
            raise ValueError(f"num_cpus must be >= 0, got {num_cpus!r}")
        if not num_gpus >= 0:
            raise ValueError(f"num_gpus must be >= 0, got {num_gpus!r}")
        if num_gpus > 1 and num_gpus != int(num_gpus):
            raise ValueError(f"num_gpus above 1 must be a whole number, got {num_gpus!r}")
        if int(max_retries) != max_retries or max_retries < -1:
            raise ValueError(f"max_retries must be a whole number >= -1 (-1: no limit), got "
                             f"{max_retries!r}")
        if threads is not None and (int(threads) != threads or threads < 1):
            raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
        self.address = address or None
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = int(max_retries)
        self.threads = int(threads) if threads is not None else max(1, int(num_cpus))
        self.init_kwargs = dict(init_kwargs or {})

    def __repr__(self) -> str:
        return (f"RayExecutor(address={self.address!r}, num_cpus={self.num_cpus}, "
                f"num_gpus={self.num_gpus}, max_retries={self.max_retries}, "
                f"threads={self.threads})")

    def _init(self) -> Any:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, **self.init_kwargs)
        return ray

    def map(self, fn: Callable[[J], R], jobs: Sequence[J], *, progress: bool = False,
            desc: str = "jobs") -> list[R]:
        jobs = list(jobs)
        ray = self._init()
        if not jobs:
            return []
        task = ray.remote(_run_job).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                            max_retries=self.max_retries,
                                            retry_exceptions=False)
        fn_ref = ray.put(fn)
        refs = [task.remote(fn_ref, job, self.threads) for job in jobs]
        try:
            _wait_all(ray, refs, progress, desc)
            return list(ray.get(refs))
        except BaseException:
            for ref in refs:  # do not leave the cluster busy with an abandoned experiment
                ray.cancel(ref, force=False)
            raise


def _run_job(fn: Callable[[Any], Any], job: Any, threads: int) -> Any:
    """The body of a Ray task: bound PyTorch's CPU threads, then run the job."""
    import importlib.util

    if threads and importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)
    return fn(job)


def _wait_all(ray: Any, refs: list[Any], progress: bool, desc: str) -> None:
    """Wait for every task (a progress bar of the finished ones); a failed task raises its error
    at once instead of after the others."""
    from tqdm.auto import tqdm

    pending = list(refs)
    with tqdm(total=len(refs), desc=desc, unit="job", disable=not progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            ray.get(done)  # raises the task's error
            bar.update(len(done))


def as_executor(executor: str | Executor | None) -> Executor:
    """An :class:`Executor` from a name (``"serial"``, ``"ray"``), an executor or ``None``
    (serial).

    Raises
    ------
    ValueError
        An unknown name (the message lists the names).
    ichprog._extras.MissingExtraError
        ``"ray"`` without ``ichprog[ray]`` installed.
    TypeError
        Neither a name nor an :class:`Executor`.
    """
    if executor is None:
        return SerialExecutor()
    if isinstance(executor, Executor):
        return executor
    if isinstance(executor, str):
        key = executor.strip().lower()
        if key == "serial":
            return SerialExecutor()
        if key == "ray":
            return RayExecutor()
        raise ValueError(f"unknown executor {executor!r}; use one of {list(EXECUTORS)} or an "
                         "ichprog.experiment.Executor")
    raise TypeError(f"executor must be one of {list(EXECUTORS)} or an "
                    f"ichprog.experiment.Executor, got {type(executor).__name__}")

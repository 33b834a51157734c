"""The sweep's Ray backend: each job a Ray task, on a local Ray or on a cluster.

:func:`model_dev.sweep.sweep` decides which jobs to run (done jobs are skipped, interrupted ones
resume from their ``last.pt``) and writes the report; this module only runs the jobs. A job is
the same :func:`model_dev.sweep.run_job` as on the local backend, with the same torch thread
count, so it writes the same ``result.json`` and the table is the same for the same seeds.

Where Ray runs
--------------
``address=None`` starts a private local Ray with one CPU per core of this machine (no dashboard)
and shuts it down afterwards; ``address="auto"`` or ``"ray://host:10001"`` joins a running
cluster (``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others). On a
cluster, every node needs aedfw installed (the same commit) and the sweep folder on a shared
filesystem at the same path: jobs write their checkpoints and ``result.json`` there.

Resources
---------
Each task asks for ``threads`` CPUs and, when the cluster has GPUs and the job's device is not
``cpu``, one GPU (Ray then sets ``CUDA_VISIBLE_DEVICES`` for the task, and training's
``device="auto"`` uses it). The features
go to Ray's object store once and are shared by the tasks of a node.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from model_dev.features import FeatureSet
from model_dev.sweep import local_cpus
from model_dev.train_config import TrainConfig


def _job(name: str, cfg: TrainConfig, job_dir: Path, split: str, fs: FeatureSet, threads: int):
    """One sweep job inside a Ray worker (the local backend's job, same thread count)."""
    import torch

    from model_dev.sweep import run_job

    torch.set_num_threads(threads)
    return run_job(name, cfg, job_dir, split, fs)


def run_jobs_ray(
    todo: list[tuple[str, TrainConfig, Path]],
    split: str,
    fs: FeatureSet,
    threads: int,
    progress: bool,
    on_result: Callable[[dict], None],
    address: str | None = None,
) -> dict[str, str]:
    """Run the jobs as Ray tasks; returns the failed ones with their errors (as the local
    backend does).

    Parameters
    ----------
    todo : list of (name, TrainConfig, job folder)
        The jobs to run.
    split, fs
        Evaluation split and the features.
    threads : int
        Torch threads (and Ray CPUs) per job.
    progress : bool
        Show a progress bar.
    on_result : callable
        Called with each finished job's result, as jobs finish.
    address : str, optional
        A running Ray cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); None starts
        a local Ray.

    Raises
    ------
    RuntimeError
        Ray is not installed, or the cluster cannot be reached (names the address).
    """
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "--backend ray needs the ray package: pip install 'aedfw[ray]'"
        ) from None
    if ray.is_initialized():
        own = False
    elif address is None:
        ray.init(num_cpus=local_cpus(), include_dashboard=False, log_to_driver=False)
        own = True
    else:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f"Ray cluster at {address!r}: {exc}") from None
        own = True
    try:
        has_gpus = ray.cluster_resources().get("GPU", 0) >= 1
        task = ray.remote(num_cpus=threads, max_retries=0)(_job)
        fs_ref = ray.put(fs)
        pending = {
            task.options(num_gpus=1 if has_gpus and cfg.device != "cpu" else 0).remote(
                name, cfg, job_dir, split, fs_ref, threads
            ): name
            for name, cfg, job_dir in todo
        }
        failed: dict[str, str] = {}
        bar = tqdm(total=len(todo), desc="sweep (ray)", unit="job", disable=not progress)
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(ready)
            try:
                on_result(ray.get(ready))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if exc.cause is not None else exc
                failed[name] = f"{type(cause).__name__}: {cause}"
            bar.update()
            bar.set_postfix_str(name)
        bar.close()
        return failed
    finally:
        if own:
            ray.shutdown()

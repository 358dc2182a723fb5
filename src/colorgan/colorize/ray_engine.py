"""Archive scale: a folder job spread over a Ray cluster (``--engine ray``, the ``cluster`` extra).

The driver plans the job exactly as the local folder job does (:func:`colorgan.colorize.plan.plan`:
which files, which outputs, the same refusals) but ships only the paths, with the model and run
options (plain data). Ray Data streams them to a pool of actors; each actor loads the model once
and runs the folder job's own runner (:class:`colorgan.colorize.runner.Runner`) on its share, so
photos are read and outputs written by the workers, with the same rules: atomic renames, existing outputs skipped, one bad photo reported
and never fatal. A rerun after any crash (the driver's or a worker's) finishes the job, since
finished outputs are skipped and half-written ones never exist under their names. The
outcomes come back to the driver, which prints the error lines and writes the report.

Paths must be visible to every node at the same place (a local disk for a one-machine cluster,
or a shared file system such as NFS mounted alike everywhere), or be storage URIs
(:mod:`colorgan.colorize.storage`), which the workers read and write through pyarrow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from colorgan.colorize import storage
from colorgan.errors import UserError, check_range, require_extra
from colorgan.model.files import resolve_model

from colorgan.colorize.outcomes import Outcome, say
from colorgan.colorize.plan import Task
from colorgan.colorize.runner import Runner, RunOptions, settled

if TYPE_CHECKING:
    from rich.console import Console

    from colorgan.colorizer import ModelOptions

log = logging.getLogger(__name__)

#: Photos per Ray task: big enough that Ray's per-task cost is small beside the colorization,
#: small enough that a crashed worker's redone share is short.
PHOTOS_PER_TASK = 16
#: How often a batch whose worker died is redone before the job fails.
TASK_RETRIES = 3


@dataclass(frozen=True, kw_only=True)
class RayOptions:
    """Where and how wide: ``address`` of a running cluster (None: start a local Ray instance,
    ``"auto"``: the one this machine belongs to, or ``ray://host:10001``), the number of actors
    (each holds one model) and the GPU share each takes (0: CPU actors)."""

    address: str | None = None
    actors: int = 1
    gpus_per_actor: float = 0.0
    verbose: bool = False  # Ray's own log lines (its C++ core, Ray Data's notes) reach the terminal

    def validate(self) -> None:
        check_range("--actors", self.actors, low=1)
        check_range("--gpus-per-actor", self.gpus_per_actor, low=0, high=8)


def ray_options(engine: str, *, address: str | None = None, actors: int = 1, gpus_per_actor: float = 0.0,
                verbose: bool = False) -> RayOptions | None:
    """The cluster options of ``--engine`` (None for the local engine); the Ray flags without it are refused."""
    if engine not in ("local", "ray"):
        raise UserError(f"unknown --engine {engine!r}; choose local or ray")
    if engine == "local":
        if address is not None or actors != 1 or gpus_per_actor:
            raise UserError("--address, --actors and --gpus-per-actor go with --engine ray")
        return None
    return RayOptions(address=address, actors=actors, gpus_per_actor=gpus_per_actor, verbose=verbose)


def require_ray() -> None:
    """Refuse ``--engine ray`` in one line, saying what to install, when Ray Data is missing."""
    require_extra("cluster", "--engine ray")


class _ColorizeActor:
    """One Ray actor: the job's model, loaded once, and the folder job's runner for each batch of paths."""

    def __init__(self, model: ModelOptions, options: RunOptions) -> None:
        from dataclasses import replace

        from rich.console import Console

        self.colorizer = model.load_colorizer()
        self.options = replace(options, size=self.colorizer.check_size(options.size))
        self.console = Console(quiet=True)  # the driver prints the error lines, from the outcomes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "source_root" in batch:
            keys = ("source_root", "source_path", "output_root", "output_path", "fmt")
            statuses = self._colorize_planned([storage.Planned(*(str(v) for v in values))
                                               for values in zip(*(batch[k] for k in keys), strict=True)])
        else:
            rows = zip(batch["source"], batch["output"], batch["fmt"], strict=True)
            statuses = [(o.status, o.reason) for o in self._run([Task(Path(s), Path(o), fmt=str(f)) for s, o, f in rows])]
        return {"index": batch["index"], "status": np.array([status for status, _ in statuses]),
                "reason": np.array([reason or "" for _, reason in statuses])}

    def _run(self, tasks: list[Task]) -> list[Outcome]:
        """The folder job's own runner on local tasks."""
        return Runner(self.colorizer, self.console, self.options).run(tasks, progress=False)

    def _colorize_planned(self, photos: list[storage.Planned]) -> list[tuple[str, str | None]]:
        """Photos in URI-named storage: each copied to a local scratch folder, colorized there by the
        folder job's runner, and the output uploaded (atomically); outputs that exist are skipped."""
        import tempfile

        statuses: list[tuple[str, str | None]] = [("skipped", "output exists")] * len(photos)
        with tempfile.TemporaryDirectory(prefix="colorgan-ray-") as scratch:
            local: list[tuple[int, Task]] = []
            for i, photo in enumerate(photos):
                if not self.options.overwrite and storage.file_exists(photo.output_root, photo.output_path):
                    continue
                here = Path(scratch) / f"{i}{PurePosixPath(photo.source_path).suffix}"
                try:
                    storage.download(photo.source_root, photo.source_path, here)
                except (OSError, UserError) as exc:
                    statuses[i] = ("failed", f"cannot read it ({exc})")
                    continue
                local.append((i, Task(here, Path(scratch) / f"{i}.out{PurePosixPath(photo.output_path).suffix}", fmt=photo.fmt)))
            for (i, task), outcome in zip(local, self._run([task for _, task in local]), strict=True):
                reason = outcome.reason.replace(str(task.source), photos[i].source) if outcome.reason else None
                statuses[i] = (outcome.status, reason)
                if outcome.status == "done":
                    try:
                        storage.upload(task.output, photos[i].output_root, photos[i].output_path)
                    except (OSError, UserError) as exc:
                        statuses[i] = ("failed", f"cannot write {photos[i].output} ({exc})")
        return statuses


def _actor_for(model: ModelOptions, options: RunOptions) -> type:
    """The actor class with the model and run options built in (shipped with the class, not as
    constructor arguments in the object store, which a restarted actor could find gone)."""

    class ColorizeActor(_ColorizeActor):
        def __init__(self) -> None:
            super().__init__(model, options)

    return ColorizeActor


def colorize_on_ray(tasks: Sequence[Task], model: ModelOptions, options: RunOptions, console: Console, ray_options: RayOptions, *,
                    progress: bool = True) -> list[Outcome]:
    """Colorize planned ``tasks`` on Ray with ``model`` and ``options``; their outcomes, in task order."""
    outcomes: dict[int, Outcome] = {}
    rows = []
    for index, task in enumerate(tasks):
        if (decided := settled(task, overwrite=options.overwrite)) is not None:  # the actors check again: this spares shipping
            outcomes[index] = decided
        else:
            rows.append({"index": index, "source": str(task.source), "output": str(task.output), "fmt": task.fmt})
    outcomes |= _run(rows, model, options, console, ray_options, progress)
    return [outcomes[index] for index in range(len(tasks))]


def colorize_uris_on_ray(inputs: Sequence[str], out: str | Path | None, fmt: str | None, model: ModelOptions,
                         options: RunOptions, console: Console, ray_options: RayOptions, *, progress: bool = True) -> list[Outcome]:
    """Inputs and output named by URIs (``s3://``, ``gs://``, ``file://``, ...; see
    :mod:`colorgan.colorize.storage`): planned by listing the storage, colorized on Ray; outcomes in plan order."""
    if out is None or not all(storage.is_uri(item) for item in [*inputs, str(out)]):
        raise UserError("with storage URIs (s3://, gs://, file://, ...), every input and -o must be a URI")
    planned = storage.plan(list(inputs), str(out), fmt)
    present = set() if options.overwrite else storage.existing(str(out))
    outcomes = {i: Outcome(p.source, p.output, "skipped", "output exists") for i, p in enumerate(planned) if p.output_path in present}
    rows = [{"index": i, "source": p.source, "output": p.output, "fmt": p.fmt, "source_root": p.source_root,
             "source_path": p.source_path, "output_root": p.output_root, "output_path": p.output_path}
            for i, p in enumerate(planned) if i not in outcomes]
    outcomes |= _run(rows, model, options, console, ray_options, progress)
    return [outcomes[i] for i in range(len(planned))]


def _run(rows: list[dict[str, Any]], model: ModelOptions, options: RunOptions, console: Console, ray_options: RayOptions,
         progress: bool) -> dict[int, Outcome]:
    """The rows (index, source, output, fmt) colorized by a pool of actors; their outcomes by index,
    each failure also said as one ``error:`` line."""
    import ray

    if not rows:
        return {}
    resolve_model(model.model)  # a wrong --model is said here, not by every worker
    _connect(ray, ray_options)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    if not ray_options.verbose:  # Ray Data's notes (its plan, its autoscaler) are Ray's, not the job's
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    dataset = _dataset(ray, rows, model, options, ray_options)
    try:
        results = dataset.take_all()
    except Exception as exc:  # noqa: BLE001 - Ray's errors (a worker that cannot start, a batch that kept crashing)
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Ray colors its messages for terminals
        first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
        raise UserError(f"the Ray job failed: {first[:300]} (outputs already written stay; run the command again to go on)") from None
    by_index = {row["index"]: row for row in rows}
    outcomes = {}
    for result in sorted(results, key=lambda r: int(r["index"])):
        row = by_index[int(result["index"])]
        reason = str(result["reason"]) or None
        outcomes[row["index"]] = Outcome(row["source"], row["output"], str(result["status"]), reason)  # type: ignore[arg-type]
        if result["status"] == "failed":
            say(console, f"error: {row['source']}: {reason}")
    return outcomes


def _dataset(ray: Any, rows: list[dict[str, Any]], model: ModelOptions, options: RunOptions, ray_options: RayOptions) -> Any:
    """The rows as a Ray Data dataset mapped by a pool of colorizing actors."""
    with warnings.catch_warnings():  # Ray 2.60 deprecates the remote arguments, and offers no other way yet
        warnings.simplefilter("ignore", DeprecationWarning)
        return ray.data.from_items(rows).map_batches(
            _actor_for(model, options), batch_size=PHOTOS_PER_TASK, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=ray_options.actors), num_cpus=1,
            num_gpus=ray_options.gpus_per_actor or None,
            # A killed actor is restarted and its unfinished batch redone (written outputs are skipped),
            # a few times: a photo that kills every worker it meets must not keep the job alive forever.
            max_restarts=-1, max_task_retries=TASK_RETRIES,
        )


def _connect(ray: Any, options: RayOptions) -> None:
    """Join the cluster at ``options.address``, or start a local Ray instance on this machine's cores."""
    if ray.is_initialized():
        return
    if not options.verbose:  # before Ray starts: its C++ core logs errors it recovers from (a restarted worker)
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    quiet = {"configure_logging": True, "logging_level": logging.INFO if options.verbose else logging.ERROR,
             "include_dashboard": False, "log_to_driver": options.verbose}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with contextlib.nullcontext() if options.verbose else _stderr_silenced():
            if options.address is None:
                ray.init(num_cpus=max(1, cores), **quiet)
            else:
                ray.init(address=options.address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot reach the Ray cluster at {options.address or 'a new local instance'}: {str(exc).splitlines()[0]}") from None


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Ray's C++ core announces on file descriptor 2, as it starts, the log level it was given; a
    failed start still raises, so nothing is lost by not showing that line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

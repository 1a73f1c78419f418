"""The training loop: chronological epochs, evaluation after each, early stopping, checkpoints and
resume.

After each epoch (every ``train.val_every``-th one, and the last) the validation split is evaluated
(and the test split with ``eval.test_every_epoch``; see ``evaluate.RunEvaluation``). The best
validated epoch by validation AP (or MRR) is kept in ``best.pt``; training stops after ``patience``
validations without improvement; the best weights are evaluated on the test split at the end.

Ctrl-C finishes the current batch, writes ``checkpoint.pt`` and returns; ``Trainer.resume``
continues from it to the same result as an uninterrupted run (bit for bit on CPU with the same
thread count): it restores the weights, the optimizer, the RNG states (torch, negatives, neighbour
sampler), TGN's memory and the epoch's partial sums. A run that had finished, test included, is not
evaluated again: its resume returns the test metrics ``metrics.jsonl`` recorded.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dgl_tgnn import run_dir as rd
from dgl_tgnn.config import RunConfig, save_config
from dgl_tgnn.data import TemporalDataset
from dgl_tgnn.distributed.group import Parallel
from dgl_tgnn.events import EventBatch
from dgl_tgnn.nn.memory import MemoryState
from dgl_tgnn.node_classification import classify_trained
from dgl_tgnn.precision import precision
from dgl_tgnn.training.build import (
    build_data,
    build_model,
    build_neighbourhoods,
    build_optimizer,
    setup_device,
)
from dgl_tgnn.training.checkpoints import (
    BEST_KEYS,
    CHECKPOINT_KEYS,
    CheckpointError,
    check_same_config,
    load_checkpoint,
    memory_from_plain,
    memory_to_plain,
    save_atomically,
)
from dgl_tgnn.training.evaluate import RunEvaluation
from dgl_tgnn.training.parallel import ParallelStep, check_supported
from dgl_tgnn.training.report import epoch_summary, format_test, peak_memory_mb
from dgl_tgnn.training.step import TrainingStep
from dgl_tgnn.training.tgb import rank_edgebank
from dgl_tgnn.training.threads import BusyMachineThreads


class TrainingDiverged(ValueError):
    """A non-finite training loss: the run stops, and nothing of the diverged model is saved."""


class RunDirError(ValueError):
    """The run directory cannot be written (the run so far is saved elsewhere when possible)."""


class Trainer:
    """Trains and evaluates one run of a config (see the module docstring).

    Args:
        config: the run config (validated here).
        run_dir: where config, metrics, curves and checkpoints go (None: nothing is written and
            Ctrl-C is not intercepted).
        dataset: the events, when already loaded (default: ``load_events(config.data)``).
        progress: show a tqdm bar per epoch.
        log: where one-line summaries go.
        cuda_graph: on a GPU, replay the training step of full batches from a CUDA graph when the
            neighbour sampler allows it (``Neighbourhoods.replayable``: no deduplication, the
            default on a GPU); same results as the step run op by op (tests/test_cuda_graph.py).
        parallel: this process's place in a data-parallel run (``distributed.group.join``), or None
            for one process. Each step then trains on a window of ``G x batch_size`` events, this
            process on its share (``parallel.ParallelStep``); every process calls the same methods
            in the same order (they hold collectives), and only the one given ``run_dir`` (rank 0)
            writes files: the others are given None and keep the best weights in memory.

    Attributes:
        data: the events, their split and features (``build.RunData``); ``streams`` is its streams.
        model, optimizer, neighbourhoods: what is trained, and the training neighbour sampler.
        step: the training step (``step.TrainingStep``), which owns ``embedder`` and ``negatives``.
        evaluation: the evaluation (``evaluate.RunEvaluation``), whose ``Evaluator`` is ``evaluator``.
        epoch, batch, partial, history, best_metric, best_epoch, bad_epochs: the run's progress.
    """

    # Inside an epoch, checkpoint.pt is written after the first batch that ends this many seconds
    # after the last checkpoint: a killed run loses minutes, not its epoch.
    checkpoint_every_s: float = 300.0
    # Set by fit(): the signal that interrupted it (SIGINT or SIGTERM; the exit code is 128 + it).
    interrupted_by: int = int(signal.SIGINT)
    _lock: int | None = None  # the run directory's lock (rd.lock_run_dir), held while training
    _last_checkpoint: float = 0.0

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path | None = None,
        *,
        dataset: TemporalDataset | None = None,
        progress: bool = True,
        log: Callable[[str], None] = print,
        cuda_graph: bool = True,
        parallel: Parallel | None = None,
    ) -> None:
        self.config = config.validate()
        self.parallel = parallel
        self.run_dir = run_dir
        self.progress = progress
        self.log = log
        c = self.config
        self.device, self.dedup = setup_device(c)
        if parallel is not None:
            self.device = parallel.device
        self.data = build_data(c, dataset, self.device)
        if parallel is not None:
            check_supported(c)
        self.streams = self.data.streams
        self.model = build_model(c, self.data, self.device)
        self.optimizer = build_optimizer(c, self.model, self.device)
        self.neighbourhoods = build_neighbourhoods(c, self.data, self.device, self.dedup)
        if parallel is None:
            self.step = TrainingStep(
                c,
                self.data,
                self.model,
                self.optimizer,
                self.neighbourhoods,
                self.device,
                cuda_graph=cuda_graph,
            )
        else:
            self.step = ParallelStep(
                c, self.data, self.model, self.optimizer, self.neighbourhoods, self.device, parallel
            )
        self.embedder, self.negatives = self.step.embedder, self.step.negatives
        self.evaluation = RunEvaluation(
            c, self.data, self.model, self.device, self.dedup, run_dir, progress=progress, parallel=parallel
        )
        self.evaluator = self.evaluation.evaluator
        self.threads = BusyMachineThreads(c.train.threads is None and self.device.type == "cpu")
        # Progress of the run (all of it goes into checkpoint.pt).
        self.epoch = 0  # the epoch being trained (0-based)
        self.batch = 0  # the next batch of that epoch
        self.partial = self._new_partial()
        self.history: list[dict[str, Any]] = []
        self.best_metric = float("-inf")
        self.best_epoch = -1
        self.bad_epochs = 0
        # The test metrics a resumed run recorded when it finished (then fit() returns them as they are).
        self.finished: dict[str, float] | None = None
        self._interrupted = False
        self._best_in_memory: tuple[dict[str, torch.Tensor], Any] | None = None

    # ----------------------------------------------------------------- setup
    @staticmethod
    def _new_partial() -> dict[str, Any]:
        """Sums over the batches of the current epoch (``losses``: one float per batch, in order)."""
        return {"losses": [], "train_seconds": 0.0, "sampler_seconds": 0.0}

    @property
    def window(self) -> int:
        """Events per training step: ``batch_size``, times ``G`` with several processes."""
        return self.config.train.batch_size * (1 if self.parallel is None else self.parallel.world)

    # ----------------------------------------------------------------- training
    def _train_batch(self, batch: EventBatch) -> torch.Tensor:
        """The training step of ``batch`` (``TrainingStep``); its loss, on the device."""
        return self.step(batch)

    def train_epoch(self, stop_after: int | None = None) -> bool:
        """Trains the rest of epoch ``self.epoch``; False when interrupted (Ctrl-C, or after
        ``stop_after`` batches) before its end."""
        stream = self.streams["train"]
        batch_size = self.window
        total = stream.num_batches(batch_size)
        if self.batch == 0:
            self.model.start_epoch()
            self.negatives.start_epoch(self.epoch)
        self.model.train()
        bar = tqdm(
            total=total,
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{self.config.train.epochs}",
            unit="batch",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        sampler_before = self.neighbourhoods.seconds
        began = time.perf_counter()
        events = 0
        # Batch losses stay on the device and are read every 20 batches (no per-batch sync on a GPU).
        losses: list[torch.Tensor] = []

        checked = len(self.partial["losses"])  # losses before this one are finite

        def read_losses(check: bool = True) -> None:
            nonlocal checked
            if losses:
                self.partial["losses"] += torch.stack(losses).tolist()
                losses.clear()
            if check:
                self._check_finite(checked)
                checked = len(self.partial["losses"])

        try:
            for batch in stream.batches(batch_size, first=self.batch):
                losses.append(self._train_batch(batch))
                self.batch += 1
                events += len(batch)
                self.threads.adapt()
                if len(losses) == 20:
                    read_losses()
                    if self.progress:
                        rate = events / max(time.perf_counter() - began, 1e-9)
                        loss = self.partial["losses"][-1]
                        bar.set_postfix(loss=f"{loss:.4f}", events_per_s=f"{rate:,.0f}", refresh=False)
                bar.update(1)
                if stop_after is not None:
                    stop_after -= 1
                    if stop_after == 0 and self.batch < total:
                        self._interrupted = True
                due = time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s
                if self.parallel is not None:  # every process stops and saves at the same step
                    self._interrupted, due = self.parallel.agree([self._interrupted, due])
                if self._interrupted and self.batch < total:
                    read_losses()
                    return False
                if due and self._saves and self.batch < total:
                    read_losses()  # (nothing diverged is saved)
                    with self._writing_run_dir():
                        self._save_checkpoint()
        finally:
            read_losses(check=False)
            bar.close()
            self.partial["train_seconds"] += time.perf_counter() - began
            self.partial["sampler_seconds"] += self.neighbourhoods.seconds - sampler_before
        self._check_finite(checked)
        return True

    def _check_finite(self, start: int) -> None:
        """Raises ``TrainingDiverged`` naming the first batch from ``start`` on (of this epoch) whose
        loss is NaN or infinite: nothing of the diverged model is saved."""
        losses = self.partial["losses"]
        for index in range(start, len(losses)):
            if not np.isfinite(losses[index]):
                total = self.streams["train"].num_batches(self.window)
                raise TrainingDiverged(
                    f"training diverged at epoch {self.epoch + 1}, batch {index + 1} of {total}: the loss "
                    f"is {losses[index]}; lower the learning rate (--lr, now {self.config.train.lr:g}) or "
                    "check the features for huge values (no checkpoint holds the diverged model)"
                )

    def fit(self, stop_after_batches: int | None = None) -> dict[str, float] | None:
        """Trains to the end (or early stop) and returns the best checkpoint's test metrics.

        Returns None when interrupted (Ctrl-C, or after ``stop_after_batches`` training batches:
        a test hook), after writing ``checkpoint.pt``.
        """
        c = self.config
        self.data.check_splits()
        if self.run_dir is not None and not (self.run_dir / rd.CONFIG).exists():
            try:
                save_config(c, self.run_dir / rd.CONFIG)
            except OSError as err:
                raise RunDirError(
                    f"cannot write to the run directory {self.run_dir} ({err.strerror or err}); "
                    "choose another with --runs-dir"
                ) from None
        self.interrupted_by = int(signal.SIGINT)
        self._last_checkpoint = time.monotonic()
        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        if self.run_dir is not None and self._lock is None:
            self._lock = rd.lock_run_dir(self.run_dir)
        if self._saves:
            for signum in previous:
                signal.signal(signum, self._on_sigint)
        try:
            if self.finished is not None:
                self.log(f"the run had already finished; its test metrics, as {rd.METRICS} recorded them:")
                self.log(format_test(self.finished))
                return self.finished
            with precision(c.train.precision, self.device):
                while not self.trained:
                    if not self.train_epoch(stop_after_batches):
                        with self._writing_run_dir():
                            self._save_checkpoint()
                        self.log(f"interrupted: resume with `dgl-tgnn train --resume {self.run_dir}`")
                        return None
                    self._finish_epoch()
                    if self._interrupted:
                        self.log(f"interrupted: resume with `dgl-tgnn train --resume {self.run_dir}`")
                        return None
                return self._final_test()
        finally:
            if self._saves:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
            if self._lock is not None:
                rd.unlock_run_dir(self._lock)
                self._lock = None

    @property
    def trained(self) -> bool:
        """Whether training is over: every epoch run, or stopped early (the test may be left)."""
        c = self.config.train
        return self.epoch >= c.epochs or self.bad_epochs >= c.patience

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """Ctrl-C or SIGTERM: finish the batch, save a checkpoint and return (a second one: stop at
        once, leaving the last checkpoint, which is never written partially)."""
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True
        self.interrupted_by = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.log(f"\n{name}: finishing the batch and saving a checkpoint (Ctrl-C again to abort)")

    def _finish_epoch(self) -> None:
        c = self.config
        epoch = self.epoch + 1
        validates = epoch % c.train.val_every == 0 or epoch == c.train.epochs
        eval_began = time.perf_counter()
        sampler_before = self.evaluator.sampler_seconds
        metrics, val_end = self.evaluation.epoch() if validates else ({}, None)
        eval_seconds = time.perf_counter() - eval_began
        refresh_seconds = self.negatives.refresh_seconds
        record = {
            "epoch": epoch,
            "loss": sum(self.partial["losses"]) / max(len(self.partial["losses"]), 1),
            **metrics,
            "train_seconds": self.partial["train_seconds"],
            "sampler_seconds": self.partial["sampler_seconds"],
            "refresh_seconds": refresh_seconds,
            "eval_seconds": eval_seconds,
            "eval_sampler_seconds": self.evaluator.sampler_seconds - sampler_before,
            "epoch_seconds": self.partial["train_seconds"] + eval_seconds,
            "peak_memory_mb": peak_memory_mb(self.device),
        }
        self.negatives.refresh_seconds = 0.0
        self.history.append(record)
        self.log(epoch_summary(record))
        best = None
        if validates:
            best = self._judge(metrics["val_mrr" if self.data.tgb else f"val_{c.eval.metric}"], val_end)
        self.epoch += 1
        self.batch = 0
        self.partial = self._new_partial()
        if self.run_dir is not None:
            with self._writing_run_dir(best):
                if best is not None:
                    save_atomically(best, self.run_dir / rd.BEST)
                rd.append_metrics(self.run_dir, record)
                rd.plot_curves(self.run_dir, self.history)
                self._save_checkpoint()
        elif self.parallel is not None:
            self._save_checkpoint()  # (its collective part)

    def _judge(self, score: float, val_end: MemoryState | None) -> dict[str, Any] | None:
        """Counts the validation of the epoch just trained: a better ``score`` makes it the best epoch,
        whose checkpoint is returned (to be written with the epoch's files; kept in memory when there
        is no run directory, then None); otherwise one more validation without improvement."""
        if score <= self.best_metric:
            self.bad_epochs += 1
            return None
        self.best_metric, self.best_epoch, self.bad_epochs = score, self.epoch + 1, 0
        if self.run_dir is None:
            weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self._best_in_memory = (weights, val_end)
            return None
        return {
            "config": self.config.to_dict(),
            "data_hash": self.data.data_hash,
            "epoch": self.epoch + 1,
            "model": self.model.state_dict(),
            "val_memory": memory_to_plain(val_end),
            "processes": 1 if self.parallel is None else self.parallel.world,
        }

    @contextlib.contextmanager
    def _writing_run_dir(self, best: dict[str, Any] | None = None) -> Iterator[None]:
        """Writes into the run directory. When one fails (read-only, removed, disk full), the run so
        far (``checkpoint.pt``, ``best`` when given, config and metrics) goes to a new directory
        under the system's temporary one, and a ``RunDirError`` says where and how to resume."""
        try:
            yield
        except OSError as err:
            assert self.run_dir is not None
            what = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
            where = (
                f"epoch {self.epoch + 1}, batch {self.batch}" if self.batch else f"end of epoch {self.epoch}"
            )
            try:
                rescue = Path(tempfile.mkdtemp(prefix=f"dgl-tgnn-rescue-{self.run_dir.name}-"))
                save_config(self.config, rescue / rd.CONFIG)
                rd.rewrite_metrics(rescue, self.history)
                if best is not None:
                    torch.save(best, rescue / rd.BEST)
                torch.save(self.state(), rescue / rd.CHECKPOINT)
            except OSError as again:
                raise RunDirError(
                    f"cannot write to the run directory {self.run_dir} ({what}), nor save the run "
                    f"elsewhere ({again.strerror or again}): the run is lost after {where}"
                ) from None
            raise RunDirError(
                f"cannot write to the run directory {self.run_dir} ({what}); the run so far ({where}) "
                f"is saved in {rescue}: copy its files into a writable run directory and continue "
                "with `dgl-tgnn train --resume` on it"
            ) from None

    def _final_test(self) -> dict[str, float]:
        """Loads the best epoch's weights (and memory) and evaluates the test split."""
        if self.run_dir is not None:
            best = load_checkpoint(self.run_dir / rd.BEST, BEST_KEYS)
            state, val_end = best["model"], memory_from_plain(best.get("val_memory"))
        else:
            assert self._best_in_memory is not None
            state, val_end = self._best_in_memory
        self.model.load_state_dict(state)
        if self.data.tgb:
            result = {f"test_{k}": v for k, v in self.evaluation.rank("test").items()}
            data, sets = self.data, self.evaluation.ranking_negatives
            # (at the evaluation's batch: G x B with several processes)
            bank = rank_edgebank(self.evaluation.config, data.dataset, data.split, sets, "unlimited")
            result["edgebank_test_mrr"] = bank["test_mrr"]
        else:
            self.model.restore_memory(val_end)
            result = self.evaluation.test(val_end)
        result["best_epoch"] = self.best_epoch
        if self.config.train.task == "node":  # TGN's node classification on the frozen best model
            data = self.data
            args = (self.model, self.config, data.dataset, data.split, self.device, self.run_dir)
            result.update(classify_trained(*args, self.progress))
        self.log(format_test(result))
        if self.run_dir is not None:
            with self._writing_run_dir():
                rd.append_metrics(self.run_dir, {"final": result})
        return result

    # ----------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        """Everything ``resume`` needs to continue exactly where this run stands."""
        memory = self.model.backup_memory()
        return {
            "config": self.config.to_dict(),
            "data_hash": self.data.data_hash,
            "epoch": self.epoch,
            "batch": self.batch,
            "partial": dict(self.partial),
            "history": list(self.history),
            "best": (self.best_metric, self.best_epoch, self.bad_epochs),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "memory": memory_to_plain(memory),
            "processes": 1 if self.parallel is None else self.parallel.world,
            "negatives": self.negatives.state_dict(),
            "neighbour_sampler": self.neighbourhoods.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.batch = state["epoch"], state["batch"]
        self.partial = dict(state["partial"])
        self.history = list(state["history"])
        self.best_metric, self.best_epoch, self.bad_epochs = state["best"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.model.restore_memory(memory_from_plain(state["memory"]))
        self.negatives.load_state_dict(state["negatives"])
        self.neighbourhoods.load_state_dict(state["neighbour_sampler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    @property
    def _saves(self) -> bool:
        """Whether this process takes part in saving checkpoints: with a run directory, or as one
        of several processes (``state`` gathers what they hold; rank 0 writes it)."""
        return self.run_dir is not None or self.parallel is not None

    def _save_checkpoint(self) -> None:
        if not self._saves:
            return
        state = self.state()
        self._last_checkpoint = time.monotonic()
        if self.run_dir is not None:
            save_atomically(state, self.run_dir / rd.CHECKPOINT)

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        *,
        progress: bool = True,
        log: Callable[[str], None] = print,
        parallel: Parallel | None = None,
    ) -> Trainer:
        """The trainer of ``run_dir`` at its last checkpoint (with ``parallel``: this process's, of
        as many processes as the checkpoint's run; rank 0 writes into ``run_dir``)."""
        run_dir = Path(run_dir)
        if not (run_dir / rd.CHECKPOINT).exists():
            raise ValueError(f"--resume {run_dir}: no {rd.CHECKPOINT} in it")
        writes = parallel is None or parallel.main
        lock = rd.lock_run_dir(run_dir) if writes else None
        try:
            trainer = cls._resumed(run_dir, progress, log, parallel)
        except BaseException:
            if lock is not None:
                rd.unlock_run_dir(lock)
            raise
        trainer._lock = lock
        return trainer

    @classmethod
    def _resumed(
        cls, run_dir: Path, progress: bool, log: Callable[[str], None], parallel: Parallel | None
    ) -> Trainer:
        config = rd.load_run_config(run_dir)
        state = load_checkpoint(run_dir / rd.CHECKPOINT, CHECKPOINT_KEYS)
        check_same_config(state["config"], config.to_dict(), run_dir / rd.CONFIG, run_dir / rd.CHECKPOINT)
        processes, now = state.get("processes", 1), 1 if parallel is None else parallel.world
        if processes != now:
            raise CheckpointError(
                f"{run_dir / rd.CHECKPOINT}: written by a run on {processes} process(es), resumed on {now}; "
                f"resume it with --nproc {processes} (or torchrun --nproc-per-node {processes})"
            )
        writes = parallel is None or parallel.main
        trainer = cls(config, run_dir if writes else None, progress=progress, log=log, parallel=parallel)
        try:
            trainer.load_state(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(
                f"{run_dir / rd.CHECKPOINT}: does not fit the model of {run_dir / rd.CONFIG} ({reason[:200]})"
            ) from None
        final = [record["final"] for record in rd.read_metrics(run_dir) if "final" in record]
        if trainer.trained and final:  # finished, test included: nothing is computed again
            trainer.finished = final[-1]
        if writes:
            kept = [] if trainer.finished is None else [{"final": trainer.finished}]
            rd.rewrite_metrics(run_dir, trainer.history + kept)
        return trainer

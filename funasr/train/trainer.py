"""The training loop: accumulation, clipping, mixed precision, validation, checkpoints, exact resume, DDP.

One optimizer step takes ``accum_grad`` batches. SIGTERM (a scheduler's or a lease's end; torchrun passes it on to
every process) stops the run after the optimizer step in progress, with a validation and a resumable
checkpoint: the same command continues it exactly. Each batch's loss is weighted by the criterion's
weight (utterances or tokens) over the weight of all processes, so ``N`` processes with batches of
``b`` step exactly as one process with batches of ``N * b`` (DistributedDataParallel averages the
gradients, the weighting undoes the average). A non-finite gradient norm skips the step.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from torch import nn

from funasr.errors import OptionError
from funasr.train import checkpoint
from funasr.train.checkpoint import NBest
from funasr.train.distributed import World

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Counters saved in every checkpoint: where the run is."""

    epoch: int = 1  # the epoch in progress (1-based)
    batches_done: int = 0  # batches of ``epoch`` already trained on
    step: int = 0  # optimizer steps taken (skipped ones included)
    skipped_steps: int = 0  # steps skipped for a non-finite gradient norm
    history: list[dict] = field(default_factory=list)  # per logged step: epoch, step, loss, acc, lr (the main process)


class Trainer:
    """Runs epochs of a criterion (a module computing ``loss, stats, weight`` of a batch) over data loaders.

    The loaders are funasr.data's: ``set_epoch(epoch)``, and ``state_dict()`` / ``load_state_dict()``
    of the position in the epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        train_loader: Any,
        valid_loader: Any,
        train_conf: dict[str, Any],
        output_dir: Path,
        world: World,
        device: torch.device,
        seconds_per_frame: float,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.valid_loader = train_loader, valid_loader
        self.conf, self.output_dir, self.world, self.device = train_conf, output_dir, world, device
        self.seconds_per_frame = seconds_per_frame
        self.rate = "audio_s_per_s"  # the throughput's unit: "tokens_per_s" for text-only training
        self.net = criterion
        if world.size > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(
                criterion, device_ids=ids, find_unused_parameters=train_conf["find_unused_parameters"]
            )
        self.dtype = torch.float16 if train_conf["use_fp16"] else torch.bfloat16 if train_conf["use_bf16"] else None
        if self.dtype is not None:
            check_autocast(device, self.dtype)
        self.scaler = torch.amp.GradScaler(device.type) if train_conf["use_fp16"] else None
        self.progress = Progress()
        self.nbest = NBest(train_conf["avg_keep_nbest_models_type"], train_conf["keep_nbest_models"])
        self.writer = self._tensorboard() if world.main else None
        self.part_names: Optional[tuple[str, ...]] = None  # the criterion's loss parts, fixed at the first training batch
        self._resume_rng: Optional[dict] = None
        self._resume_loader: Optional[dict] = None
        self.stopped = False  # set by SIGTERM: the run ends after the step in progress

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard is not installed (pip install 'funasr[train]'): no TensorBoard logs")
            return None
        return SummaryWriter(str(self.output_dir / "tensorboard"))

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything a resume needs, FunASR's ``state_dict`` key holding the weights."""
        p = self.progress
        return {
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": p.epoch,
            "batches_done": p.batches_done,
            "step": p.step,
            "skipped_steps": p.skipped_steps,
            "history": p.history,
            "nbest": self.nbest.scores,
            "nbest_metric": self.nbest.metric,
            "loader": self.train_loader.state_dict() if p.batches_done else None,
            "rng": checkpoint.rng_state(),
        }

    def resume(self, path: Path) -> None:
        """Continue the run saved in ``path`` (``model.pt``): weights, optimizer, scheduler, counters, data position, RNG."""
        state = checkpoint.load(path)
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(state["epoch"], state["batches_done"], state["step"], state["skipped_steps"], state["history"])
        self.nbest = NBest(self.nbest.metric, self.nbest.keep, state["nbest"])
        self._resume_rng, self._resume_loader = state["rng"], state["loader"]
        log.info("resuming from %s: epoch %d after %d batches, step %d", path, state["epoch"], state["batches_done"], state["step"])

    def _save(self, name: str, score: float) -> None:
        """Write ``model.pt`` and, while among the n best, ``name`` (the same file); refresh ``model.pt.best``."""
        if not self.world.main:
            return
        best = self.nbest.add(name, score, self.output_dir)
        latest = self.output_dir / "model.pt"
        checkpoint.save(self.state(), latest)
        if name in self.nbest.scores:
            _link_or_copy(latest, self.output_dir / name)
        if best:
            _link_or_copy(latest, self.output_dir / "model.pt.best")
        log.info("saved %s (validation %s %.4f%s)", name, self.nbest.metric, score, ", the best so far" if best else "")

    # ------------------------------------------------------------------ loops
    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _autocast(self) -> Any:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _batches(self, loader: Any) -> Iterator[dict]:
        """The batches of ``loader`` while every process has one; a batch with no usable item is left out on all."""
        it = iter(loader)
        while True:
            batch = next(it, None)
            if self._resume_rng is not None:  # inside an epoch: the interrupted run had its data iterator already
                checkpoint.set_rng_state(self._resume_rng)
                self._resume_rng = None
            size = self.world.min(-1 if batch is None else len(batch["keys"]), self.device)
            if size < 0:
                return
            if size == 0:
                log.warning("a batch with no usable utterance (all bad data) is left out")
                continue
            yield batch

    def fit(self, max_epoch: int) -> None:
        """Train until ``max_epoch`` epochs are done (or SIGTERM), validating and saving at each epoch end."""
        with self._stop_on_sigterm():
            self._fit(max_epoch)

    @contextlib.contextmanager
    def _stop_on_sigterm(self) -> Iterator[None]:
        """While training, SIGTERM asks for a stop at the next optimizer step instead of killing the process."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            log.warning("SIGTERM: stopping after the step in progress (validation and a resumable checkpoint first)")
            self.stopped = True

        previous = signal.signal(signal.SIGTERM, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _fit(self, max_epoch: int) -> None:
        while self.progress.epoch <= max_epoch:
            epoch = self.progress.epoch
            self.train_loader.set_epoch(epoch)
            if self._resume_loader is not None:  # resumed inside this epoch
                self.train_loader.load_state_dict(self._resume_loader)
                self._resume_loader = None
            elif self._resume_rng is not None:  # resumed at an epoch boundary
                checkpoint.set_rng_state(self._resume_rng)
                self._resume_rng = None
            if not self.train_epoch(epoch):
                return
            self.scheduler.step()  # once more at each epoch end, as FunASR's train.py does
            self.progress.epoch, self.progress.batches_done = epoch + 1, 0
            self._validate_and_save(f"model.pt.ep{epoch}")

    def train_epoch(self, epoch: int) -> bool:
        """One epoch (the rest of it when resumed inside it); False when SIGTERM stopped it (checkpoint saved)."""
        conf, p = self.conf, self.progress
        loader = self.train_loader
        self.net.train()
        accum = conf["accum_grad"]
        bar = _progress_bar(self.world.main, epoch, len(loader), p.batches_done)
        window = {"loss": 0.0, "acc": 0.0, "batches": 0, "seconds": 0.0, "start": time.perf_counter(), "parts": []}
        micro = 0
        for batch in self._batches(loader):
            micro += 1
            update = micro % accum == 0
            batch = self._to_device(batch)
            sync = contextlib.nullcontext() if update or self.world.size == 1 else self.net.no_sync()
            with sync:
                with self._autocast():
                    loss, stats, weight = self.net(batch)
                weight = torch.as_tensor(weight, dtype=torch.float64, device=self.device)
                # one reduction carries the batch weights and any process's stop request
                total, stops = self.world.sum([float(weight), float(self.stopped)], self.device)
                total = torch.tensor(total, dtype=torch.float64)
                scaled = loss * (float(weight) / float(total) * self.world.size / accum)
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            p.batches_done += 1
            window["loss"] += float(loss.detach()) * float(weight) / float(total) * self.world.size
            window["acc"] += float(stats.get("acc", float("nan")))
            window["parts"] = self._add_parts(window["parts"], stats, training=True)
            window["batches"] += 1
            window["seconds"] += self._amount(batch)
            if update:
                self._step()
            if bar is not None:
                bar.update(1)
            if update and p.step % conf["log_interval"] == 0:
                self._log(epoch, window, bar)
            interval = conf["validate_interval"]
            if update and (stops or (interval and p.step % interval == 0)):
                self._validate_and_save(f"model.pt.ep{epoch}.{p.step}")
                self.net.train()
            if update and stops:
                log.warning("stopped at epoch %d step %d; the same command resumes from %s", epoch, p.step,
                            self.output_dir / "model.pt")
                self.stopped = True
                if bar is not None:
                    bar.close()
                return False
        if micro % accum:  # the epoch's last, incomplete accumulation (its batches ran without DDP's sync)
            self._average_gradients()
            self._step()
        if bar is not None:
            bar.close()
        return True

    def _amount(self, batch: dict[str, Any]) -> float:
        """The audio seconds of ``batch``, or its tokens when it has no audio (``rate`` follows)."""
        if "speech_lengths" in batch:
            return float(batch["speech_lengths"].sum()) * self.seconds_per_frame
        self.rate = "tokens_per_s"
        return float(batch["text_lengths"].sum())

    def _average_gradients(self) -> None:
        """Average the gradients over the processes by hand (what DDP does on a synchronised backward)."""
        if self.world.size == 1:
            return
        for q in self.model.parameters():
            if q.requires_grad:
                if q.grad is None:
                    q.grad = torch.zeros_like(q)
                torch.distributed.all_reduce(q.grad)
                q.grad /= self.world.size

    def _step(self) -> None:
        """Clip and apply the accumulated gradients (skipped when their norm is not finite), then the scheduler."""
        conf, p = self.conf, self.progress
        params = [q for q in self.model.parameters() if q.requires_grad]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if conf["grad_clip"] > 0:
            norm = nn.utils.clip_grad_norm_(params, conf["grad_clip"], norm_type=conf["grad_clip_type"])
        else:
            norms = [q.grad.norm() for q in params if q.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
        p.step += 1
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the update itself on inf/nan
            self.scaler.update()
        elif torch.isfinite(norm):
            self.optimizer.step()
        if not torch.isfinite(norm):
            p.skipped_steps += 1
            log.warning("step %d: the gradient norm is %s; update skipped", p.step, float(norm))
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _add_parts(self, sums: list[float], stats: dict[str, Any], training: bool = False) -> list[float]:
        """``sums`` plus a batch's loss parts (the criterion's ``loss_*`` stats: ``loss_att``, ``loss_ctc``, ...).

        The names are fixed at the first training batch, which every process runs at the same step, so all
        processes reduce lists of the same length (validation before any training batch reports no parts)."""
        if self.part_names is None and training:
            self.part_names = tuple(sorted(k for k in stats if k.startswith("loss_")))
        names = self.part_names or ()
        return [total + float(stats.get(k, float("nan"))) for total, k in zip(sums or [0.0] * len(names), names)]

    def _parts(self, sums: list[float], batches: float) -> dict[str, float]:
        """Mean loss parts by name (``sums`` already reduced over the processes)."""
        return {k: v / max(batches, 1.0) for k, v in zip(self.part_names or (), sums)}

    def _log(self, epoch: int, window: dict, bar: Any) -> None:
        """Report the mean loss (and its parts), accuracy and throughput since the last report (all processes take
        part, in one reduction)."""
        loss, acc, batches, seconds, *parts = self.world.sum(
            [window["loss"], window["acc"], window["batches"], window["seconds"], *window["parts"]], self.device
        )
        elapsed = time.perf_counter() - window["start"]
        record = {
            "epoch": epoch, "step": self.progress.step, "loss": loss / batches, **self._parts(parts, batches),
            "acc": acc / batches, "lr": self.optimizer.param_groups[0]["lr"], self.rate: seconds / max(elapsed, 1e-9),
        }
        window.update(loss=0.0, acc=0.0, batches=0, seconds=0.0, start=time.perf_counter(), parts=[])
        if not self.world.main:
            return
        self.progress.history.append(record)
        unit = "audio s/s" if self.rate == "audio_s_per_s" else "tokens/s"
        if bar is not None:
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['acc']:.3f}", lr=f"{record['lr']:.2e}",
                            speed=f"{record[self.rate]:.1f} {unit}")
        log.info("epoch %d step %d: loss %.4f%s acc %.4f lr %.3e %.1f %s", epoch, record["step"], record["loss"],
                 _parts_text(record), record["acc"], record["lr"], record[self.rate], unit)
        if self.writer is not None:
            for k in ("loss", *(self.part_names or ()), "acc", "lr", self.rate):
                self.writer.add_scalar(f"train/{k}", record[k], record["step"])

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss and accuracy over the validation batches (unweighted, as FunASR), over all processes."""
        self.net.eval()
        loss = acc = batches = 0.0
        sums = [0.0] * len(self.part_names or ())  # the names are fixed by training, never here
        for batch in self._batches(self.valid_loader):
            with self._autocast():
                value, stats, _ = self.net(self._to_device(batch))
            loss += float(value)
            acc += float(stats.get("acc", float("nan")))
            sums = self._add_parts(sums, stats)
            batches += 1
        loss, acc, batches, *parts = self.world.sum([loss, acc, batches, *sums], self.device)
        if not batches:
            return {"loss": float("nan"), "acc": float("nan")}
        return {"loss": loss / batches, **self._parts(parts, batches), "acc": acc / batches}

    def _validate_and_save(self, name: str) -> None:
        metrics = self.validate()
        if self.world.main:
            log.info("validation after step %d: loss %.4f%s acc %.4f", self.progress.step, metrics["loss"], _parts_text(metrics),
                     metrics["acc"])
            if self.writer is not None:
                for k, v in metrics.items():
                    self.writer.add_scalar(f"valid/{k}", v, self.progress.step)
                self.writer.flush()
        self._save(name, metrics[self.nbest.metric])
        self.world.barrier()

    def close(self) -> None:
        """Flush the TensorBoard log."""
        if self.writer is not None:
            self.writer.close()


def check_autocast(device: torch.device, dtype: torch.dtype) -> None:
    """Raise OptionError when this torch cannot run a layer under autocast to ``dtype`` on ``device``."""
    option = "use_fp16" if dtype == torch.float16 else "use_bf16"
    try:
        with torch.autocast(device.type, dtype=dtype):
            out = nn.functional.linear(torch.ones(1, 2, device=device), torch.ones(2, 2, device=device))
    except (RuntimeError, TypeError, ValueError) as e:
        out, why = None, str(e)
    else:
        why = f"autocast on {device.type} gives {out.dtype}"
    if out is None or out.dtype != dtype:
        raise OptionError(f"train_conf.{option}=true: torch {torch.__version__} cannot autocast to {dtype} on {device} "
                          f"({why}); turn {option} off or use the other precision")


def _parts_text(record: dict[str, float]) -> str:
    """`` (loss_att 1.2345, loss_ctc 6.7890)`` of a record's loss parts for a log line; empty without parts."""
    parts = [f"{k} {v:.4f}" for k, v in record.items() if k.startswith("loss_")]
    return f" ({', '.join(parts)})" if parts else ""


def _progress_bar(show: bool, epoch: int, total: int, done: int) -> Any:
    """A progress bar on a terminal (none in a log file or on other processes)."""
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total + done, initial=done, desc=f"epoch {epoch}", unit="batch", dynamic_ncols=True, leave=False,
                disable=None)


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as the same file as ``src`` (a hard link; a copy where links are not possible)."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)

"""Batch transcription of many files (``funasr-batch``): workers that each load the model once, resumable JSONL.

``transcribe_batch(input, output, model=..., workers=N)`` reads a manifest (a folder, searched
recursively, a ``wav.scp``, a FunASR ``.jsonl`` or a text list), hands the files to ``N`` workers
(Ray actors when Ray is installed, on a local Ray instance or a cluster; else local processes)
longest first (so the work is balanced by audio duration, not file count), and appends
one JSON line per file to ``OUTPUT/results.jsonl`` as each finishes: ``key``, ``source``, the
result fields (``text``, ``timestamp``, ``sentence_info``, ...) or ``error``, ``duration`` (s of
audio) and ``processing_time`` (s). Requested per-file formats (``txt``, ``srt``, ``json``) are
written beside it.

Resumable and lossless: a rerun keeps the lines without ``error`` and redoes the missing and failed
files; a worker that dies (killed, out of memory) is replaced and its file retried once on another
worker; a file whose worker dies twice is recorded with that error. Each line is flushed and synced
when written, so an interrupted run loses nothing that was reported.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import soundfile as sf
from tqdm.auto import tqdm

from funasr.audio import collect_sources, is_url
from funasr.errors import FunASRError, OptionError
from funasr.writers import file_stem, to_json, to_srt, to_txt

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
FILE_FORMATS = {"txt": to_txt, "srt": to_srt, "json": to_json}
ENGINES = ("torch", "onnx")
BACKENDS = ("auto", "local", "ray")
MAX_ATTEMPTS = 2  # a file whose worker dies this many times is recorded with an error
POLL_S = 0.2


@dataclass
class Job:
    """One file to transcribe: its key, where it is, its duration (s, 0 when unknown) and how often a worker died on it."""

    key: str
    source: str
    duration: float = 0.0
    attempts: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """What each worker loads (once) and how it calls it; plain data, sent to the worker processes."""

    model: str
    vad_model: Optional[str] = None
    punc_model: Optional[str] = None
    engine: str = "torch"
    device: Optional[str] = None
    hub: str = "hf"
    threads: int = 1  # per worker
    generate: dict = field(default_factory=dict)  # generate() keyword arguments (hotword, sentence_timestamp, ...)

    def load(self) -> Any:
        """The model: ``funasr.AutoModel`` (torch) or ``funasr_onnx.AutoModel`` (onnx, exported folders)."""
        kwargs: dict[str, Any] = {"model": self.model, "hub": self.hub, "disable_pbar": True}
        kwargs.update({k: v for k, v in (("vad_model", self.vad_model), ("punc_model", self.punc_model)) if v})
        if self.engine == "onnx":
            from funasr_onnx import AutoModel

            return AutoModel(**kwargs, intra_op_num_threads=self.threads, device=self.device or "cpu")
        from funasr.auto_model import AutoModel

        return AutoModel(**kwargs, ncpu=self.threads, device=self.device)


def audio_duration(source: str) -> float:
    """Seconds of audio a local file's header announces (0 for URLs and unreadable files)."""
    if is_url(source):
        return 0.0
    try:
        return float(sf.info(source).duration)
    except Exception:  # unreadable or not audio: the worker reports why
        return 0.0


def read_manifest(input: Union[str, Path, Sequence[str]]) -> list[Job]:
    """The jobs of ``input`` (folder, list file, audio file or URL, or a list of them), unique keys, longest first."""
    from funasr.bin.cli import expand_inputs

    values = [str(v) for v in ([input] if isinstance(input, (str, Path)) else input)]
    paths, failures = expand_inputs(values)
    if failures:
        raise OptionError("; ".join(f"input {value!r}: {why}" for value, why in failures))
    sources, _ = collect_sources(paths)
    jobs = [Job(s.key, str(s.value), audio_duration(str(s.value))) for s in sources if s.error is None]
    bad = [f"{s.key}: {s.error}" for s in sources if s.error is not None]
    if bad:
        raise OptionError(f"the manifest has entries that cannot be read: {'; '.join(bad[:5])}")
    return sorted(jobs, key=lambda j: -j.duration)


class ResultLog:
    """``results.jsonl``: one line per finished file; on opening, the failed lines of ``keys`` are dropped (to be redone)."""

    def __init__(self, folder: Path, keys: set[str]) -> None:
        self.path = folder / RESULTS
        self.done: set[str] = set()  # keys with a result
        kept: list[str] = []
        if self.path.is_file():
            seen: set[str] = set()
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut by a crash mid-write
                    continue
                if not isinstance(record, dict) or record.get("key") in seen or ("error" in record and record.get("key") in keys):
                    continue
                seen.add(record["key"])
                kept.append(line)
                if "error" not in record:
                    self.done.add(record["key"])
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
            os.replace(tmp, self.path)
        self._fd = self.path.open("a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and make it durable."""
        self._fd.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fd.flush()
        os.fsync(self._fd.fileno())

    def close(self) -> None:
        """Close the file."""
        self._fd.close()


def transcribe(model: Any, spec: ModelSpec, job: Job) -> dict[str, Any]:
    """One job through a loaded model: the JSONL record (result fields, or ``error``)."""
    start = time.monotonic()
    try:
        (result,) = model.generate(input=job.source, **spec.generate)
    except FunASRError as e:
        result = {"error": str(e)}
    except Exception as e:  # a bug must not stop the other files; its type and message are recorded
        result = {"error": f"{type(e).__name__}: {e}"}
    result.pop("key", None)
    return {"key": job.key, "source": job.source, **result, "duration": round(job.duration, 3),
            "processing_time": round(time.monotonic() - start, 3)}


def died_record(job: Job, last: str) -> dict[str, Any]:
    """The record of a job whose worker died MAX_ATTEMPTS times."""
    return {"key": job.key, "source": job.source, "duration": round(job.duration, 3),
            "error": f"the worker process died {job.attempts} times on this input (last: {last})"}


def _worker(spec: ModelSpec, tasks: Any, results: Any, wid: int) -> None:
    """A worker process: load the model once, then transcribe the jobs sent to it until ``None``."""
    try:
        model = spec.load()
    except Exception as e:
        results.put(("load_error", wid, f"{type(e).__name__}: {e}"))
        return
    results.put(("ready", wid, None))
    while True:
        job = tasks.get()
        if job is None:
            return
        results.put(("done", wid, transcribe(model, spec, job)))


class LocalPool:
    """``workers`` processes, one job in flight each, so a process that dies loses exactly the job it held."""

    def __init__(self, spec: ModelSpec, workers: int) -> None:
        self.spec = spec
        self.ctx = mp.get_context("spawn")  # no fork after torch's threads started
        self.results = self.ctx.Queue()
        self.procs: dict[int, Any] = {}
        self.tasks: dict[int, Any] = {}
        self.holding: dict[int, Optional[Job]] = {}
        self.ready: set[int] = set()
        self._next_id = 0
        for _ in range(workers):
            self._start()

    def _start(self) -> None:
        wid, self._next_id = self._next_id, self._next_id + 1
        self.tasks[wid] = self.ctx.Queue()
        self.holding[wid] = None
        self.procs[wid] = self.ctx.Process(target=_worker, args=(self.spec, self.tasks[wid], self.results, wid), daemon=True)
        self.procs[wid].start()

    def run(self, jobs: list[Job], on_record: Callable[[dict[str, Any]], None]) -> None:
        """Transcribe ``jobs`` (longest first), calling ``on_record`` in the parent as each finishes."""
        todo = list(jobs)
        while todo or any(self.holding.values()):
            for wid in sorted(self.ready):
                if todo and self.holding[wid] is None:
                    self.holding[wid] = job = todo.pop(0)
                    self.tasks[wid].put(job)
            try:
                kind, wid, payload = self.results.get(timeout=POLL_S)
            except queue.Empty:
                self._replace_dead(todo, on_record)
                continue
            if kind == "load_error":
                self.close()
                raise FunASRError(f"a worker could not load the model: {payload}")
            if kind == "ready":
                self.ready.add(wid)
            elif kind == "done" and self.holding.get(wid) is not None:
                self.holding[wid] = None
                on_record(payload)

    def _replace_dead(self, todo: list[Job], on_record: Callable[[dict[str, Any]], None]) -> None:
        """Replace workers that died; the job each held is retried first, or recorded once it has failed MAX_ATTEMPTS times."""
        for wid, proc in list(self.procs.items()):
            if proc.is_alive():
                continue
            job = self.holding.pop(wid)
            del self.procs[wid], self.tasks[wid]
            self.ready.discard(wid)
            log.warning("worker %d died (exit code %s)%s", wid, proc.exitcode, f" on {job.key}" if job else "")
            if job is not None:
                job.attempts += 1
                if job.attempts >= MAX_ATTEMPTS:
                    on_record(died_record(job, f"exit code {proc.exitcode}"))
                else:
                    todo.insert(0, job)
            self._start()

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [p.pid for p in self.procs.values() if p.is_alive()]

    def close(self) -> None:
        """Stop the workers."""
        for wid, proc in self.procs.items():
            if proc.is_alive():
                self.tasks[wid].put(None)
        for proc in self.procs.values():
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


class Transcriber:
    """A Ray actor: the model loaded once, then one job per call."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.model = spec.load()

    def run(self, job: Job) -> dict[str, Any]:
        """The JSONL record of ``job``."""
        return transcribe(self.model, self.spec, job)

    def pid(self) -> int:
        """The actor's process id."""
        return os.getpid()


class RayPool:
    """Ray actors, one model each, on a local Ray instance (started here) or the cluster at ``address``.

    One job in flight per actor; an actor that dies is replaced and its job retried first, or
    recorded once actors died on it MAX_ATTEMPTS times.
    """

    def __init__(self, spec: ModelSpec, workers: int, address: Optional[str] = None, cpus_per_worker: float = 1,
                 gpus_per_worker: float = 0) -> None:
        import ray

        if not ray.is_initialized():
            local = {} if address else {"num_cpus": max(1, int(workers * cpus_per_worker)), "num_gpus": int(workers * gpus_per_worker)}
            ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
        self.ray = ray
        self.spec = spec
        self.actor = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(Transcriber)
        actors = [self.actor.remote(spec) for _ in range(workers)]
        self.holding: dict[Any, Optional[Job]] = {a: None for a in actors}
        try:
            self.pid_of = dict(zip(actors, ray.get([a.pid.remote() for a in actors])))  # the first actors' processes
        except ray.exceptions.RayActorError as e:
            self.close()
            raise FunASRError(f"a worker could not load the model: {e}") from e

    def run(self, jobs: list[Job], on_record: Callable[[dict[str, Any]], None]) -> None:
        """Transcribe ``jobs`` (longest first), calling ``on_record`` in the driver as each finishes."""
        ray = self.ray
        todo, flying = list(jobs), {}
        while todo or flying:
            for actor, held in self.holding.items():
                if todo and held is None:
                    self.holding[actor] = job = todo.pop(0)
                    flying[actor.run.remote(job)] = actor
            (ref,), _ = ray.wait(list(flying), num_returns=1)
            actor = flying.pop(ref)
            job = self.holding[actor]
            try:
                record = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                del self.holding[actor]
                self.holding[self.actor.remote(self.spec)] = None
                job.attempts += 1
                log.warning("a worker died on %s: %s", job.key, e)
                if job.attempts >= MAX_ATTEMPTS:
                    on_record(died_record(job, type(e).__name__))
                else:
                    todo.insert(0, job)
                continue
            self.holding[actor] = None
            on_record(record)

    def close(self) -> None:
        """Stop the actors."""
        for actor in list(self.holding):
            self.ray.kill(actor)


@dataclass
class BatchSummary:
    """What a run did: files in the manifest, skipped (already in the output), transcribed, failed; audio seconds done."""

    total: int
    skipped: int
    transcribed: int = 0
    failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0


def check_formats(formats: Union[str, Sequence[str], None]) -> tuple[str, ...]:
    """Per-file formats besides the JSONL: names from ``txt``, ``srt``, ``json`` (``jsonl`` is always written)."""
    names = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats or ()) if f.strip()]
    unknown = [f for f in names if f not in FILE_FORMATS and f != "jsonl"]
    if unknown:
        raise OptionError(f"format={formats!r}: unknown {', '.join(unknown)}; choose from jsonl, {', '.join(FILE_FORMATS)}")
    return tuple(f for f in names if f != "jsonl")


def pick_backend(backend: str, address: Optional[str], gpus_per_worker: float) -> str:
    """``"ray"`` or ``"local"``: ``auto`` is Ray when it is installed (or an ``address`` is given)."""
    if backend not in BACKENDS:
        raise OptionError(f"backend={backend!r} is not allowed: choose from {', '.join(BACKENDS)}")
    if isinstance(gpus_per_worker, bool) or not isinstance(gpus_per_worker, (int, float)) or not 0 <= gpus_per_worker:
        raise OptionError(f"gpus_per_worker={gpus_per_worker!r} is not allowed: pass a number >= 0")
    has_ray = importlib.util.find_spec("ray") is not None
    chosen = ("ray" if has_ray or address else "local") if backend == "auto" else backend
    if chosen == "ray" and not has_ray:
        raise OptionError("Ray is not installed (backend='ray', or an address was given): pip install 'funasr[ray]'")
    if chosen == "local" and (address or gpus_per_worker):
        raise OptionError("address and gpus_per_worker need the Ray backend (pip install 'funasr[ray]'); locally, pass device=")
    return chosen


def transcribe_batch(
    input: Union[str, Path, Sequence[str]],
    output: Union[str, Path],
    model: str,
    vad_model: Optional[str] = None,
    punc_model: Optional[str] = None,
    engine: str = "torch",
    hotword: Optional[str] = None,
    formats: Union[str, Sequence[str], None] = "jsonl",
    workers: int = 1,
    cpus_per_worker: int = 1,
    gpus_per_worker: float = 0,
    device: Optional[str] = None,
    hub: str = "hf",
    backend: str = "auto",
    address: Optional[str] = None,
    progress: bool = True,
    started: Optional[Callable[[Any], None]] = None,
) -> BatchSummary:
    """Transcribe every file of ``input`` into ``output`` (a folder; see the module docstring).

    ``workers`` processes (Ray actors, or local processes: ``backend``) run ``cpus_per_worker``
    threads each; ``gpus_per_worker`` and ``address`` (``auto`` or ``ray://host:port``) need Ray.
    ``started`` is called with the worker pool once it runs (to watch its processes).
    """
    if engine not in ENGINES:
        raise OptionError(f"engine={engine!r} is not allowed: choose from {', '.join(ENGINES)}")
    for name, value in (("workers", workers), ("cpus_per_worker", cpus_per_worker)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{name}={value!r} is not allowed: pass an integer >= 1")
    backend = pick_backend(backend, address, gpus_per_worker)
    extra = check_formats(formats)
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"output={str(output)!r} is a file; pass a folder (results.jsonl is written inside)")
    jobs = read_manifest(input)
    folder.mkdir(parents=True, exist_ok=True)
    results = ResultLog(folder, {j.key for j in jobs})
    todo = [j for j in jobs if j.key not in results.done]
    summary = BatchSummary(total=len(jobs), skipped=len(jobs) - len(todo))
    generate: dict[str, Any] = {"hotword": hotword} if hotword else {}
    if "srt" in extra and vad_model and punc_model:
        generate["sentence_timestamp"] = True
    spec = ModelSpec(model, vad_model, punc_model, engine, device, hub, cpus_per_worker, generate)
    start = time.monotonic()
    bar = tqdm(total=round(sum(j.duration for j in todo), 1), unit="s audio", disable=not progress or not todo, desc="batch")

    def on_record(record: dict[str, Any]) -> None:
        results.append(record)
        if "error" in record:
            summary.failed += 1
        else:
            summary.transcribed += 1
            for fmt in extra:
                body = FILE_FORMATS[fmt](record)
                if body:  # an SRT needs timing (a VAD and punctuation model give sentences)
                    (folder / f"{file_stem(record['key'])}.{fmt}").write_text(body, encoding="utf-8")
        summary.audio_s += record.get("duration") or 0.0
        elapsed = time.monotonic() - start
        bar.set_postfix(files=f"{summary.transcribed + summary.failed}/{len(todo)}", rtf_x=f"{summary.audio_s / max(elapsed, 1e-9):.1f}")
        bar.update(round(record.get("duration") or 0.0, 1))

    try:
        if todo:
            n = min(workers, len(todo))
            workers_pool = RayPool(spec, n, address, cpus_per_worker, gpus_per_worker) if backend == "ray" else LocalPool(spec, n)
            try:
                if started is not None:
                    started(workers_pool)
                workers_pool.run(todo, on_record)
            finally:
                workers_pool.close()
    finally:
        bar.close()
        results.close()
    summary.wall_s = time.monotonic() - start
    return summary

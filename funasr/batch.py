"""Batch transcription of many files (``funasr-batch``): workers that each load the model once, resumable JSONL.

``transcribe_batch(input, output, model=..., workers=N)`` reads a manifest (a folder, searched
recursively, a ``wav.scp``, a FunASR ``.jsonl`` or a text list; local paths, http(s) URLs, or
file-system / object-store URIs such as ``s3://``, ``gs://``, ``file://`` read through pyarrow or
fsspec as Ray Data reads them) and hands the files, longest first (so the work is balanced by
audio duration, not file count), to ``N`` workers: with Ray, a Ray Data pipeline (``from_items``
-> ``map_batches`` with a callable class on an actor pool, one model per actor, loaded once), on a
local Ray instance or a cluster; without Ray, local processes. It appends one JSON line per file
to ``OUTPUT/results.jsonl`` as each finishes: ``key``, ``source``, the result fields (``text``,
``timestamp``, ``sentence_info``, ...) or ``error``, ``duration`` (s of audio) and
``processing_time`` (s). Requested per-file formats (``txt``, ``srt``, ``json``) are written beside it.

Resumable and lossless: a rerun keeps the lines without ``error`` and redoes the missing and failed
files; a worker that dies (killed, out of memory) is replaced and its file retried once in a new
worker process; a file whose worker dies twice is recorded with that error. Each line is flushed and
synced when written, by the driver only, once per key, so an interrupted run loses nothing that was reported.
"""
from __future__ import annotations

import importlib.util
import io
import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import soundfile as sf
from tqdm.auto import tqdm

from funasr.audio import collect_sources, is_url
from funasr.engines import check_engine
from funasr.errors import FunASRError, OptionError
from funasr.hub import resolve_model
from funasr.writers import file_stem, to_json, to_srt, to_txt

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
FILE_FORMATS = {"txt": to_txt, "srt": to_srt, "json": to_json}
BACKENDS = ("auto", "local", "ray")
MAX_ATTEMPTS = 2  # a file whose worker dies this many times is recorded with an error
POLL_S = 0.2
BYTES_PER_SECOND = 32000  # 16-bit mono at 16 kHz: a URI's duration estimate from its size, to order the work
URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass
class Job:
    """One file to transcribe: its key, where it is (path, URL or URI), its duration (s, 0 when unknown), its size (bytes,
    0 when unknown) and how often a worker died on it."""

    key: str
    source: str
    duration: float = 0.0
    size: int = 0
    attempts: int = 0

    @property
    def weight(self) -> float:
        """Seconds of audio, or their estimate from the size (16-bit 16 kHz) where the header was not read (URIs)."""
        return self.duration or self.size / BYTES_PER_SECOND


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


def is_uri(value: str) -> bool:
    """True for a file-system or object-store URI (``s3://``, ``gs://``, ``file://``, ...): read through pyarrow/fsspec."""
    return bool(URI.match(value)) and not is_url(value)


def uri_filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow file system, path) of ``uri``, resolved as Ray Data resolves its paths: pyarrow's own, else fsspec's."""
    try:
        import pyarrow
        import pyarrow.fs as pafs
    except ImportError as e:
        raise OptionError(f"input {uri!r}: URIs are read with pyarrow: pip install 'funasr[ray]' (or pyarrow)") from e
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, ValueError):  # a scheme pyarrow does not know: fsspec's (memory://, az://, ...)
        pass
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as e:
        scheme = uri.split("://", 1)[0]
        raise OptionError(f"input {uri!r}: no file system for {scheme}:// ({e}); install its package (s3fs, gcsfs, adlfs, ...)") from e
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def read_uri(uri: str) -> bytes:
    """The bytes of the file at ``uri``."""
    fs, path = uri_filesystem(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def list_uri(uri: str) -> list[Job]:
    """The audio files at ``uri``: the file itself, or a folder's audio files (recursively), with their sizes."""
    import pyarrow.fs as pafs

    from funasr.bin.cli import AUDIO_SUFFIXES

    fs, path = uri_filesystem(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [Job(Path(path).stem, uri, size=info.size)]
        if info.type != pafs.FileType.Directory:
            raise OptionError(f"input {uri!r}: no such file or folder")
        found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as e:
        raise OptionError(f"input {uri!r}: cannot be listed ({e})") from e
    scheme = uri.split("://", 1)[0]
    files = sorted((i for i in found if i.type == pafs.FileType.File and Path(i.path).suffix.lower() in AUDIO_SUFFIXES), key=lambda i: i.path)
    if not files:
        raise OptionError(f"input {uri!r}: folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return [Job(Path(i.path).stem, f"{scheme}://{i.path}", size=i.size) for i in files]


def audio_duration(source: str) -> float:
    """Seconds of audio a local file's header announces (0 for URLs, URIs and unreadable files)."""
    if URI.match(source):
        return 0.0
    try:
        return float(sf.info(source).duration)
    except Exception:  # unreadable or not audio: the worker reports why
        return 0.0


def read_manifest(input: Union[str, Path, Sequence[str]]) -> list[Job]:
    """The jobs of ``input`` (folder, list file, audio file, URL or URI, or a list of them), unique keys, longest first."""
    from funasr.bin.cli import expand_inputs

    values = [str(v) for v in ([input] if isinstance(input, (str, Path)) else input)]
    paths, failures = expand_inputs([v for v in values if not is_uri(v)])
    if failures:
        raise OptionError("; ".join(f"input {value!r}: {why}" for value, why in failures))
    listed = [job for v in values if is_uri(v) for job in list_uri(v)]
    sources, _ = collect_sources(paths + [job.source for job in listed])
    size = {job.source: job.size for job in listed}
    jobs = [Job(s.key, str(s.value), audio_duration(str(s.value)), size.get(str(s.value), 0)) for s in sources if s.error is None]
    bad = [f"{s.key}: {s.error}" for s in sources if s.error is not None]
    if bad:
        raise OptionError(f"the manifest has entries that cannot be read: {'; '.join(bad[:5])}")
    return sorted(jobs, key=lambda j: -j.weight)


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
    duration = job.duration
    try:
        data: Union[str, bytes] = job.source
        if is_uri(job.source):
            data = read_uri(job.source)
            duration = audio_duration_of(data)
        (result,) = model.generate(input=data, **spec.generate)
    except FunASRError as e:
        result = {"error": str(e)}
    except Exception as e:  # a bug or an unreadable URI must not stop the other files; its type and message are recorded
        result = {"error": f"{type(e).__name__}: {e}"}
    result.pop("key", None)
    return {"key": job.key, "source": job.source, **result, "duration": round(duration, 3),
            "processing_time": round(time.monotonic() - start, 3)}


def audio_duration_of(data: bytes) -> float:
    """Seconds of audio the header of a file's bytes announces (0 when it cannot be read)."""
    try:
        return float(sf.info(io.BytesIO(data)).duration)
    except Exception:  # not audio: generate() reports why
        return 0.0


def died_record(job: Job, last: str) -> dict[str, Any]:
    """The record of a job whose worker died MAX_ATTEMPTS times."""
    return {"key": job.key, "source": job.source, "duration": round(job.duration, 3),
            "error": f"the worker process died {job.attempts} times on this input (last: {last})"}


def _worker(spec: ModelSpec, tasks: Any, results: Any) -> None:
    """A worker process: load the model once, then transcribe the jobs sent to it until ``None``."""
    try:
        model = spec.load()
    except Exception as e:
        results.send(("load_error", f"{type(e).__name__}: {e}"))
        return
    results.send(("ready", None))
    while True:
        job = tasks.recv()
        if job is None:
            return
        results.send(("done", transcribe(model, spec, job)))


class LocalPool:
    """``workers`` processes, one job in flight each, so a process that dies loses exactly the job it held.

    Each worker has its own pipes: a process killed while sending breaks only its own channel.
    """

    def __init__(self, spec: ModelSpec, workers: int) -> None:
        self.spec = spec
        self.ctx = mp.get_context("spawn")  # no fork after torch's threads started
        self.procs: dict[int, Any] = {}
        self.tasks: dict[int, Any] = {}  # parent -> worker
        self.results: dict[int, Any] = {}  # worker -> parent
        self.holding: dict[int, Optional[Job]] = {}
        self.ready: set[int] = set()
        self._next_id = 0
        for _ in range(workers):
            self._start()

    def _start(self) -> None:
        wid, self._next_id = self._next_id, self._next_id + 1
        task_out, task_in = self.ctx.Pipe(duplex=False)
        result_out, result_in = self.ctx.Pipe(duplex=False)
        self.holding[wid] = None
        self.procs[wid] = self.ctx.Process(target=_worker, args=(self.spec, task_out, result_in), daemon=True)
        self.procs[wid].start()
        task_out.close()
        result_in.close()  # the worker holds the only writer: its death reads as end of file here
        self.tasks[wid], self.results[wid] = task_in, result_out

    def run(self, jobs: list[Job], on_record: Callable[[dict[str, Any]], None]) -> None:
        """Transcribe ``jobs`` (longest first), calling ``on_record`` in the parent as each finishes."""
        todo = list(jobs)
        while todo or any(self.holding.values()):
            for wid in sorted(self.ready):
                if todo and self.holding[wid] is None:
                    self.holding[wid] = job = todo.pop(0)
                    try:
                        self.tasks[wid].send(job)
                    except OSError:  # it died: replaced below, the job retried
                        pass
            for conn in mp.connection.wait(list(self.results.values()), timeout=POLL_S):
                wid = next(w for w, c in self.results.items() if c is conn)
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):  # the worker died (perhaps mid-message): replaced below
                    continue
                if kind == "load_error":
                    self.close()
                    raise FunASRError(f"a worker could not load the model: {payload}")
                if kind == "ready":
                    self.ready.add(wid)
                elif kind == "done" and self.holding.get(wid) is not None:
                    self.holding[wid] = None
                    on_record(payload)
            self._replace_dead(todo, on_record)

    def _replace_dead(self, todo: list[Job], on_record: Callable[[dict[str, Any]], None]) -> None:
        """Replace workers that died; the job each held is retried first, or recorded once it has failed MAX_ATTEMPTS times."""
        for wid, proc in list(self.procs.items()):
            if proc.is_alive():
                continue
            proc.join()
            job = self.holding.pop(wid)
            self.tasks.pop(wid).close()
            self.results.pop(wid).close()
            del self.procs[wid]
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
                try:
                    self.tasks[wid].send(None)
                except OSError:
                    pass
        for proc in self.procs.values():
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


class Attempts:
    """A Ray actor counting the times each file was started, across the actors' restarts (a started file that never
    finished killed its actor)."""

    def __init__(self) -> None:
        self.started: dict[str, int] = {}

    def start(self, key: str) -> int:
        """Count one more start of ``key``; returns the count."""
        self.started[key] = self.started.get(key, 0) + 1
        return self.started[key]


class Transcriber:
    """Ray Data's callable class: one per actor of the pool, the model loaded once; each batch's rows become JSONL records.

    Ray restarts an actor whose process died and retries its batch; a file started more than
    MAX_ATTEMPTS times (its actor died each time) is recorded with an error instead of run again.
    """

    def __init__(self, spec: ModelSpec, attempts: Any) -> None:
        self.spec = spec
        self.attempts = attempts
        self.model = spec.load()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        """``{key, source, duration, size}`` columns -> a ``record`` column (JSON text: one schema whatever the result)."""
        import ray

        records = []
        for key, source, duration, size in zip(batch["key"], batch["source"], batch["duration"], batch["size"]):
            job = Job(str(key), str(source), float(duration), int(size))
            job.attempts = ray.get(self.attempts.start.remote(job.key)) - 1
            records.append(died_record(job, "a Ray actor died") if job.attempts >= MAX_ATTEMPTS else transcribe(self.model, self.spec, job))
        return {"record": [json.dumps(r, ensure_ascii=False, default=str) for r in records]}


def ray_available() -> bool:
    """True when Ray with Ray Data is importable (``pip install 'funasr[ray]'``), not another package named ``ray``."""
    if importlib.util.find_spec("ray") is None:
        return False
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return callable(getattr(ray, "init", None))


def run_ray_data(spec: ModelSpec, jobs: list[Job], on_record: Callable[[dict[str, Any]], None], workers: int,
                 address: Optional[str] = None, cpus_per_worker: float = 1, gpus_per_worker: float = 0) -> None:
    """Transcribe ``jobs`` with Ray Data: ``from_items`` (one file per block, longest first) -> ``map_batches(Transcriber)``
    on an actor pool of ``workers`` actors, one file in flight each; ``on_record`` runs in the driver as each finishes."""
    import ray

    if not ray.is_initialized():
        local = {} if address else {"num_cpus": max(1, int(workers * cpus_per_worker)), "num_gpus": int(workers * gpus_per_worker)}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, **local)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver's bar counts files and audio
    context.execution_options.preserve_order = False  # results as they finish
    attempts = ray.remote(num_cpus=0)(Attempts).remote()
    rows = [{"key": j.key, "source": j.source, "duration": j.duration, "size": j.size} for j in jobs]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        Transcriber, fn_constructor_args=(spec, attempts), batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
    )
    done: set[str] = set()
    try:
        for row in dataset.iter_rows():
            record = json.loads(row["record"])
            if record["key"] not in done:  # a block Ray re-ran after a failure may come back twice
                done.add(record["key"])
                on_record(record)
    except ray.exceptions.RayError as e:  # the pipeline itself failed (a worker cannot load the model, the cluster went away)
        raise FunASRError(f"the Ray Data pipeline stopped: {type(e).__name__}: {e}") from e
    finally:
        ray.kill(attempts)


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
    has_ray = ray_available()
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
    started: Optional[Callable[[LocalPool], None]] = None,
) -> BatchSummary:
    """Transcribe every file of ``input`` into ``output`` (a folder; see the module docstring).

    ``workers`` processes (Ray actors, or local processes: ``backend``) run ``cpus_per_worker``
    threads each; ``gpus_per_worker`` and ``address`` (``auto`` or ``ray://host:port``) need Ray.
    ``started`` is called with the local pool once it runs (to watch its processes).
    """
    check_engine(engine, local=address is None)
    for name, value in (("workers", workers), ("cpus_per_worker", cpus_per_worker)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{name}={value!r} is not allowed: pass an integer >= 1")
    backend = pick_backend(backend, address, gpus_per_worker)
    extra = check_formats(formats)
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"output={str(output)!r} is a file; pass a folder (results.jsonl is written inside)")
    jobs = read_manifest(input)
    if address is None and engine == "torch":  # same machine: a wrong model name fails here, once, not in every worker
        for name in (model, vad_model, punc_model):
            if name:
                resolve_model(name, hub)
    folder.mkdir(parents=True, exist_ok=True)
    results = ResultLog(folder, {j.key for j in jobs})
    todo = [j for j in jobs if j.key not in results.done]
    summary = BatchSummary(total=len(jobs), skipped=len(jobs) - len(todo))
    generate: dict[str, Any] = {"hotword": hotword} if hotword else {}
    if "srt" in extra and vad_model and punc_model:
        generate["sentence_timestamp"] = True
    spec = ModelSpec(model, vad_model, punc_model, engine, device, hub, cpus_per_worker, generate)
    start = time.monotonic()
    weight = {j.key: j.weight / 3600 for j in todo}  # hours of audio (estimated from the size for URIs)
    bar = tqdm(total=sum(weight.values()), disable=not progress or not todo, desc="batch",
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3f}/{total:.3f} h audio [{elapsed}<{remaining}{postfix}]")

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
        bar.set_postfix_str(f"{summary.transcribed + summary.failed}/{len(todo)} files, {summary.audio_s / max(elapsed, 1e-9):.1f}x real time")
        bar.update(weight.get(record["key"], 0.0))

    try:
        if todo:
            n = min(workers, len(todo))
            if backend == "ray":
                run_ray_data(spec, todo, on_record, n, address, cpus_per_worker, gpus_per_worker)
            else:
                pool = LocalPool(spec, n)
                try:
                    if started is not None:
                        started(pool)
                    pool.run(todo, on_record)
                finally:
                    pool.close()
    finally:
        bar.close()
        results.close()
    summary.wall_s = time.monotonic() - start
    return summary

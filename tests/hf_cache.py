"""Build a Hugging Face hub cache on disk (blobs, snapshots, refs) as huggingface_hub lays it out."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def add_to_hf_cache(cache: Path, repo_id: str, src: Path, commit: str = "a" * 40) -> Path:
    """Store the files of ``src`` as revision ``main`` of model ``repo_id`` in ``cache``; returns the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for f in sorted(src.iterdir()):
        if not f.is_file():
            continue
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(f, blob)
        link = snapshot / f.name
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, snapshot), link)
    return snapshot

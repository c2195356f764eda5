"""Training data: jsonl lists, the dataset, the length-bucketing sampler and the batch layout.

A batch is a dict: ``keys`` (list[str]); ``speech`` float32 (B, T, D), the frontend's features
(fbank -> LFR -> CMVN, the inference code path), zero-padded; ``speech_lengths`` int64 (B,);
``text`` int64 (B, L), token ids padded with ``IGNORE_ID``; ``text_lengths`` int64 (B,).
A batch whose utterances all failed to load has ``keys == []`` and B = 0: skip it.

Modules: ``funasr.data.jsonl`` (FunASR's jsonl lists, scp2jsonl/jsonl2scp, the byte-offset index;
torch-free), ``funasr.data.dataset`` (``AudioDataset``, ``collate``, bad-data handling),
``funasr.data.sampler`` (``BatchSampler``, ``DataLoader``: seeded, rank-aware, resumable).
"""

IGNORE_ID = -1  # padding of ``text``; losses ignore it

"""U2 streams: chunk-by-chunk encoding with caches, partial CTC prefix results after every chunk, the final
search on input_finished(), several streams batched, against WeNet's recordings (wenet.json)."""
from __future__ import annotations

import numpy as np
import pytest

from funasr.errors import OptionError
from tests.conftest import read_wave
from tests.test_u2 import CASES, u2pp

pytestmark = pytest.mark.usefixtures("one_thread")


def case(clip: str, config: str, method: str) -> dict:
    return next(c for c in CASES if c["id"] == f"u2pp_conformer_tiny/{clip}/{config}/{method}")


def test_stream_partials_and_final_batched() -> None:
    """Two streams fed in uneven pieces, decoded together: every chunk's partial text equals WeNet's partial_result,
    and input_finished() gives the attention-rescoring result of WeNet's chunk-by-chunk decoding."""
    task = u2pp().task
    clips = ("example", "sample")
    waves = [read_wave(f"{c}.wav") for c in clips]
    streams = [task.create_stream(16, key=c, reverse_weight=0.3) for c in clips]
    partials: list[list[str]] = [[], []]
    pos = [0, 0]
    piece = [2560, 7000]  # 0.16 s and 0.44 s: chunks of the two streams become ready in different rounds
    while not all(s.closed for s in streams):
        for i, s in enumerate(streams):
            if s.finished:
                continue
            s.accept_waveform(waves[i][pos[i] : pos[i] + piece[i]])
            pos[i] += piece[i]
            if pos[i] >= len(waves[i]):
                s.input_finished()
        for i, res in enumerate(task.decode_streams(streams)):
            assert res["key"] == clips[i]
            if not res["is_final"] and streams[i].beam.frames and (not partials[i] or partials[i][-1] != res["text"]):
                partials[i].append(res["text"])
            elif res["is_final"] and "timestamp" in res:
                want = case(clips[i], "chunk16_stream", "attention_rescoring")["expected"]
                assert res["text"] == want["text"]
                assert res["timestamp"] == [[w["start"], w["end"]] for w in want["runtime_word_pieces"]]
    for i, clip in enumerate(clips):
        want = [p["text"] for p in case(clip, "chunk16_stream", "ctc_prefix_beam_search")["expected"]["partials"]]
        deduped = [t for j, t in enumerate(want) if t and (j == 0 or t != want[j - 1])]
        got = [t for t in partials[i] if t]
        assert got == deduped[: len(got)] and len(got) >= len(deduped) - 2  # the last chunks come with the final call
        final = case(clip, "chunk16_stream", "ctc_prefix_beam_search")["expected"]["partials"][-1]["tokens"]
        assert streams[i].beam.nbest()[0].tokens == final


@pytest.mark.parametrize("config, chunk, left", [("chunk4_left1_stream", 4, 1), ("chunk8_stream", 8, -1)])
def test_stream_limited_left_chunks(config: str, chunk: int, left: int) -> None:
    """A stream keeping only ``left`` chunks of keys gives WeNet's result for that cache size."""
    task = u2pp().task
    stream = task.create_stream(chunk, num_decoding_left_chunks=left, decoding_method="ctc_prefix_beam_search")
    stream.accept_waveform(read_wave("example.wav"))
    stream.input_finished()
    res = task.decode_stream(stream)
    assert res["is_final"] and res["text"] == case("example", config, "ctc_prefix_beam_search")["expected"]["text"]


def test_stream_bad_options() -> None:
    task = u2pp().task
    with pytest.raises(OptionError, match="chunk size > 0"):
        task.create_stream(-1)
    with pytest.raises(OptionError, match="decoding_chunk_size=0"):
        task.create_stream(0)
    with pytest.raises(OptionError, match="beam_size"):
        task.create_stream(16, beam_size=0)


def test_stream_too_short_is_empty() -> None:
    task = u2pp().task
    stream = task.create_stream(16)
    stream.accept_waveform(np.zeros(400, dtype=np.float32))
    stream.input_finished()
    assert task.decode_stream(stream) == {"key": "stream", "text": "", "timestamp": [], "is_final": True}

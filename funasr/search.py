"""Searches over CTC, attention-decoder and non-autoregressive outputs, separate from any network (numpy only,
torch-free).

Any model with a CTC head and/or an autoregressive attention decoder can use them: the CTC
searches take per-frame log-probabilities, the attention searches take callables that run the
network; ``lm_beam_search`` takes a non-autoregressive decoder's per-position log-probabilities
(Paraformer) and an n-gram LM. The arithmetic follows WeNet's (``wenet/transformer/search.py``): prefix beam search in
Python floats, the attention beam search and the rescoring sums in float32.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, Tuple

import numpy as np

METHODS = ("ctc_greedy_search", "ctc_prefix_beam_search", "attention", "attention_rescoring")
NEG_INF = -float("inf")


@dataclass
class Hypothesis:
    """One search result: token ids, the score (None where the search gives none) and CTC peak frames."""

    tokens: list[int]
    score: Optional[float] = None
    times: Optional[list[int]] = None  # the frame of each token's CTC peak
    confidence: Optional[float] = None
    tokens_confidence: Optional[list[float]] = None


def log_add(*args: float) -> float:
    """log(sum(exp(args))), -inf when every argument is -inf."""
    if all(a == NEG_INF for a in args):
        return NEG_INF
    top = max(args)
    return top + math.log(sum(math.exp(a - top) for a in args))


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of a 1-D array, largest first (ties: lower index first)."""
    if k >= values.size:
        return np.argsort(-values, kind="stable")
    kth = np.partition(values, values.size - k)[values.size - k]
    above = np.flatnonzero(values > kth)
    picked = np.concatenate([above, np.flatnonzero(values == kth)[: k - above.size]])
    return picked[np.argsort(-values[picked], kind="stable")]


def ctc_greedy_search(logp: np.ndarray, blank_id: int = 0) -> Hypothesis:
    """Best token per frame (T, V), repeats merged, blanks dropped; ``times``: the most likely frame of each token's run."""
    best = logp.argmax(-1)
    tokens: list[int] = []
    times: list[int] = []
    prev = blank_id
    for t, u in enumerate(best.tolist()):
        if u != blank_id and u != prev:
            tokens.append(u)
            times.append(t)
        elif u != blank_id and logp[t, u] > logp[times[-1], u]:
            times[-1] = t
        prev = u
    return Hypothesis(tokens, None, times)


@dataclass
class _Prefix:
    """Scores of one prefix: ending in blank (``s``) or not (``ns``), their Viterbi twins and peak frames."""

    s: float = NEG_INF
    ns: float = NEG_INF
    v_s: float = NEG_INF
    v_ns: float = NEG_INF
    cur_token_prob: float = NEG_INF
    times_s: list[int] = field(default_factory=list)
    times_ns: list[int] = field(default_factory=list)

    def score(self) -> float:
        return log_add(self.s, self.ns)

    def viterbi(self) -> float:
        return max(self.v_s, self.v_ns)

    def times(self) -> list[int]:
        return self.times_s if self.v_s > self.v_ns else self.times_ns


class PrefixBeam:
    """CTC prefix beam search that can take frames in pieces (streaming); ``nbest()`` at any point."""

    def __init__(self, beam_size: int, blank_id: int = 0) -> None:
        self.beam_size, self.blank_id = beam_size, blank_id
        self.hyps: list[tuple[tuple[int, ...], _Prefix]] = [((), _Prefix(s=0.0, v_s=0.0, v_ns=0.0))]
        self.frames = 0

    def extend(self, logp: np.ndarray) -> None:
        """Advance over frames (T, V) of log-probabilities."""
        for row in logp:
            self._step(row, self.frames)
            self.frames += 1

    def _step(self, row: np.ndarray, t: int) -> None:
        nxt: dict[tuple[int, ...], _Prefix] = {}
        for u in top_k(row, self.beam_size).tolist():
            p = float(row[u])
            for prefix, cur in self.hyps:
                last = prefix[-1] if prefix else None
                if u == self.blank_id:
                    n = nxt.setdefault(prefix, _Prefix())
                    n.s = log_add(n.s, cur.score() + p)
                    n.v_s = cur.viterbi() + p
                    n.times_s = cur.times().copy()
                elif u == last:
                    n = nxt.setdefault(prefix, _Prefix())  # *uu -> *u
                    n.ns = log_add(n.ns, cur.ns + p)
                    if n.v_ns < cur.v_ns + p:
                        n.v_ns = cur.v_ns + p
                        if n.cur_token_prob < p:
                            n.cur_token_prob = p
                            n.times_ns = cur.times_ns.copy()
                            n.times_ns[-1] = t
                    n2 = nxt.setdefault(prefix + (u,), _Prefix())  # *u-u -> *uu
                    n2.ns = log_add(n2.ns, cur.s + p)
                    if n2.v_ns < cur.v_s + p:
                        n2.v_ns = cur.v_s + p
                        n2.cur_token_prob = p
                        n2.times_ns = cur.times_s + [t]
                else:
                    n = nxt.setdefault(prefix + (u,), _Prefix())
                    n.ns = log_add(n.ns, cur.score() + p)
                    if n.v_ns < cur.viterbi() + p:
                        n.v_ns = cur.viterbi() + p
                        n.cur_token_prob = p
                        n.times_ns = cur.times() + [t]
        ranked = sorted(nxt.items(), key=lambda kv: kv[1].score(), reverse=True)
        self.hyps = ranked[: self.beam_size]

    def nbest(self) -> list[Hypothesis]:
        """The beam, best first: prefixes with their CTC scores and peak frames."""
        return [Hypothesis(list(prefix), s.score(), list(s.times())) for prefix, s in self.hyps]


def ctc_prefix_beam_search(logp: np.ndarray, beam_size: int, blank_id: int = 0) -> list[Hypothesis]:
    """The n-best prefixes of frames (T, V) of CTC log-probabilities, best first."""
    search = PrefixBeam(beam_size, blank_id)
    search.extend(logp)
    return search.nbest()


def attention_beam_search(step: Callable[[np.ndarray], np.ndarray], sos: int, eos: int, beam_size: int,
                          max_len: int, length_penalty: float = 0.0) -> Hypothesis:
    """Autoregressive beam search: ``step(hyps (N, L) int64) -> log-probs of the next token (N, V) float32``.

    Stops when every beam ends in ``<eos>`` or after ``max_len`` steps; no length normalisation
    unless ``length_penalty``. The result carries no score, as WeNet's.
    """
    hyps = np.full((beam_size, 1), sos, dtype=np.int64)
    scores = np.array([0.0] + [NEG_INF] * (beam_size - 1), dtype=np.float32)
    ended = np.zeros(beam_size, dtype=bool)
    for _ in range(max_len):
        if ended.all():
            break
        logp = step(hyps)
        cand = np.stack([top_k(row, beam_size) for row in logp])  # (N, N)
        cand_logp = np.take_along_axis(logp, cand, 1).astype(np.float32)
        cand_logp[ended] = np.array([0.0] + [NEG_INF] * (beam_size - 1), dtype=np.float32)
        cand[ended] = eos
        total = (scores[:, None] + cand_logp).reshape(-1)
        best = top_k(total, beam_size)
        scores = total[best]
        hyps = np.concatenate([hyps[best // beam_size], cand.reshape(-1)[best][:, None]], axis=1)
        ended = hyps[:, -1] == eos
    lengths = (hyps != eos).sum(1).astype(np.float32)
    best = int(np.argmax(scores / lengths**length_penalty))
    return Hypothesis([int(t) for t in hyps[best, 1:] if t != eos])


def decoder_inputs(hyps: Sequence[Sequence[int]], sos: int, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """``<sos> + hyp`` padded with ``<eos>``: (N, L+1) int64, and the lengths ``len+1`` (N,)."""
    width = max((len(h) for h in hyps), default=0) + 1
    out = np.full((len(hyps), width), eos, dtype=np.int64)
    out[:, 0] = sos
    for i, h in enumerate(hyps):
        out[i, 1 : len(h) + 1] = h
    return out, np.array([len(h) + 1 for h in hyps], dtype=np.int64)


def attention_rescoring(nbest: list[Hypothesis], l2r: np.ndarray, r2l: Optional[np.ndarray], eos: int,
                        ctc_weight: float, reverse_weight: float) -> Hypothesis:
    """The n-best of the prefix beam search rescored with the decoder log-probs (N, L+1, V) of ``decoder_inputs``.

    score = (1-rw)·L2R + rw·R2L + ctc_weight·CTC (R2L only when ``r2l`` is given and rw > 0);
    the first best wins ties. ``confidence`` is exp(attention score / (len+1)).
    """
    best, best_score = 0, NEG_INF
    confidences: list[float] = []
    per_token: list[list[float]] = []
    for i, hyp in enumerate(nbest):
        n = len(hyp.tokens)
        steps = l2r[i, np.arange(n), hyp.tokens].astype(np.float32)
        score = np.float32(0.0)
        for s in steps:
            score = np.float32(score + s)
        score = np.float32(score + l2r[i, n, eos])
        tc = [math.exp(s) for s in steps.tolist()]
        if r2l is not None and reverse_weight > 0:
            r_steps = r2l[i, n - 1 - np.arange(n), hyp.tokens].astype(np.float32)
            r_score = np.float32(0.0)
            for s in r_steps:
                r_score = np.float32(r_score + s)
            r_score = np.float32(r_score + r2l[i, n, eos])
            tc = [(a + math.exp(s)) / 2 for a, s in zip(tc, r_steps.tolist())]
            score = np.float32(score * np.float32(1 - reverse_weight) + r_score * np.float32(reverse_weight))
        confidences.append(math.exp(float(score) / (n + 1)))
        per_token.append(tc)
        total = float(np.float32(score + np.float32(hyp.score * ctc_weight)))
        if total > best_score:
            best, best_score = i, total
    pick = nbest[best]
    return Hypothesis(pick.tokens, best_score, pick.times, confidences[best], per_token[best])


# decoder(hyps (N, L+1) int64: <sos> + hyp padded with <eos>, lens (N,) int64, reverse) -> log-probs (N, L+1, V) of the
# left-to-right decoder and, when ``reverse`` and the model has one, of the right-to-left decoder (else None)
Decoder = Callable[[np.ndarray, np.ndarray, bool], Tuple[np.ndarray, Optional[np.ndarray]]]


def run_search(method: str, ctc: np.ndarray, decoder: Decoder, sos: int, eos: int, blank_id: int = 0, beam_size: int = 10,
               ctc_weight: float = 0.5, reverse_weight: float = 0.0) -> Hypothesis:
    """The search ``method`` (one of METHODS) over one utterance: CTC log-probs (T, V) and its attention ``decoder``."""
    if method == "ctc_greedy_search":
        return ctc_greedy_search(ctc, blank_id)
    if method == "attention":
        def step(hyps: np.ndarray) -> np.ndarray:
            return decoder(hyps, np.full(len(hyps), hyps.shape[1], dtype=np.int64), False)[0][:, -1]

        return attention_beam_search(step, sos, eos, beam_size, len(ctc))
    nbest = ctc_prefix_beam_search(ctc, beam_size, blank_id)
    if method == "ctc_prefix_beam_search":
        return nbest[0]
    hyps, lens = decoder_inputs([h.tokens for h in nbest], sos, eos)
    l2r, r2l = decoder(hyps, lens, reverse_weight > 0)
    return attention_rescoring(nbest, l2r, r2l, eos, ctc_weight, reverse_weight)


class LanguageModel(Protocol):
    """What a search asks of an LM: natural-log scores over states (``funasr.lm.NgramLM``)."""

    def begin(self) -> Any: ...
    def score(self, state: Any, word: str) -> tuple[float, Any]: ...
    def end(self, state: Any) -> float: ...


def lm_beam_search(logp: np.ndarray, words: Sequence[Optional[str]], lm: LanguageModel, weight: float, beam_size: int) -> list[int]:
    """One token per position (N, V) of a non-autoregressive decoder (Paraformer), chosen with an LM (shallow fusion).

    A beam search over the positions, scoring log p_am + ``weight`` * log p_lm (and the LM's ``</s>`` at the end);
    each position offers its ``beam_size`` best tokens. ``words[id]`` is a token's LM word; a token whose word is
    None (blank, <s>, </s>) emits nothing, as in greedy decoding. Hypotheses with the same tokens are merged
    (the best kept). Returns the emitted token ids.

    An LM log-probability is never above 0, so score + log p_am bounds an expansion's total. Expansions are taken
    best bound first, and the search of a position stops at the first bound below the ``beam_size``-th best total
    found: no later one could be kept. The result is that of scoring every expansion.
    """
    beams: list[tuple[tuple[int, ...], float, Any]] = [((), 0.0, lm.begin())]
    for row in logp:
        offered = top_k(row, beam_size).tolist()
        am = [float(row[c]) for c in offered]
        grown: dict[tuple[int, ...], tuple[float, Any]] = {}
        kept: list[float] = []  # min-heap of each new hypothesis's first total: its least is a safe bar
        todo = [(-(beams[0][1] + am[0]), 0, 0)]  # (-bound, beam, offer): beams and offers are sorted best first
        while todo:
            neg_bound, i, j = heapq.heappop(todo)
            if len(kept) == beam_size and -neg_bound < kept[0]:
                break
            if j + 1 < len(am):
                heapq.heappush(todo, (-(beams[i][1] + am[j + 1]), i, j + 1))
            if j == 0 and i + 1 < len(beams):
                heapq.heappush(todo, (-(beams[i + 1][1] + am[0]), i + 1, 0))
            tokens, _, state = beams[i]
            c = offered[j]
            if words[c] is None:
                new, total, after = tokens, -neg_bound, state
            else:
                lp, after = lm.score(state, words[c])
                new, total = tokens + (c,), -neg_bound + weight * lp
            if new not in grown:
                if len(kept) < beam_size:
                    heapq.heappush(kept, total)
                else:
                    heapq.heappushpop(kept, total)
            if new not in grown or total > grown[new][0]:
                grown[new] = (total, after)
        ranked = sorted(grown.items(), key=lambda kv: -kv[1][0])[:beam_size]
        beams = [(tokens, total, state) for tokens, (total, state) in ranked]
    best = max(beams, key=lambda b: b[1] + weight * lm.end(b[2]))
    return list(best[0])


def word_pieces(times: Sequence[int], frame_ms: int, gap_ms: int = 100) -> list[list[int]]:
    """[start_ms, end_ms] per token from CTC peak frames, by WeNet's runtime rule (integer arithmetic)."""
    out = []
    for j, t in enumerate(times):
        start = max(t * frame_ms - gap_ms, 0)
        if j > 0 and (t - times[j - 1]) * frame_ms < gap_ms:
            start = (times[j - 1] + t) // 2 * frame_ms
        end = t * frame_ms
        if j + 1 < len(times) and (times[j + 1] - t) * frame_ms < gap_ms:
            end = (t + times[j + 1]) // 2 * frame_ms
        out.append([start, end])
    return out

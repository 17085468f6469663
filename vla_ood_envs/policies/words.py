"""A small word-level instruction tokenizer for the tiny VLA.

The vocabulary is every word of the tasks' instruction templates (training and held-out phrasings of VLAPick and
VLAOpen) and of the catalog's object, receptacle and articulated-object names, so a held-out instruction or object
is spelled with known words where it can be; anything else maps to <unk>. Building it twice gives the same list
(sorted), and checkpoints store the list so a model keeps its ids even if the catalog grows.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+")


def split_words(text: str) -> list[str]:
    """Lower-case alphanumeric runs: "Put {O} onto {R}." -> ["put", "o", "onto", "r"]."""
    return _WORD.findall(text.lower())


def default_vocabulary() -> list[str]:
    """[<pad>, <unk>, sorted words of the templates and catalog names]; deterministic."""
    from ..catalog import default_catalog
    from ..factors.open import OPEN_TEST_TEMPLATES, OPEN_TRAIN_TEMPLATE
    from ..factors.pick import TEST_TEMPLATES, TRAIN_TEMPLATE

    texts: list[str] = []
    for t in (TRAIN_TEMPLATE, *TEST_TEMPLATES, OPEN_TRAIN_TEMPLATE, *OPEN_TEST_TEMPLATES):
        texts.append(t.replace("{O}", " ").replace("{R}", " "))
    cat = default_catalog()
    texts += cat.names("objects") + cat.names("receptacles") + cat.names("articulated")
    texts += [a.noun for a in cat.articulated if getattr(a, "noun", None)]
    words = sorted({w for t in texts for w in split_words(t)})
    return [PAD, UNK] + words


class WordTokenizer:
    """Instructions -> (B, L) int64 word ids, padded with 0 (<pad>); unknown words -> 1 (<unk>).

    L is the longest instruction of the batch (at least 1: an empty instruction is one <pad>, which the model's
    mean over words ignores).
    """

    def __init__(self, words: Sequence[str] | None = None):
        words = list(default_vocabulary() if words is None else words)
        if words[:2] != [PAD, UNK] or len(set(words)) != len(words):
            raise ValueError("a word vocabulary starts with <pad>, <unk> and lists each word once")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        self._cache: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, text: str) -> list[int]:
        out = self._cache.get(text)
        if out is None:
            out = [self.index.get(w, 1) for w in split_words(text)]
            if len(self._cache) < 100_000:
                self._cache[text] = out
        return out

    def __call__(self, texts: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
        seqs = [self.ids(t) for t in texts]
        width = max([1] + [len(s) for s in seqs])
        out = torch.zeros((len(seqs), width), dtype=torch.int64)
        for i, s in enumerate(seqs):
            if s:
                out[i, :len(s)] = torch.tensor(s, dtype=torch.int64)
        return out.to(device) if device is not None else out

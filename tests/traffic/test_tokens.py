"""loadgate/client/tokens.py: counting output tokens from the text when the server sends no usage."""

from __future__ import annotations

import pytest

from loadgate.client import tokens
from loadgate.client.tokens import TokenizerError, estimate_tokens, load_counter
from loadgate.mock import protocol


def test_the_estimate_is_one_token_per_four_characters_rounded():
    assert [estimate_tokens(t) for t in ("", "a", "ab", "abcdef", "abcdefghij", "x" * 400)] == [
        0,
        1,  # a non-empty text is at least one token
        1,  # 0.5 rounds half up
        2,  # 1.5 -> 2
        3,  # 2.5 -> 3
        100,
    ]
    assert load_counter("estimate").source == "estimate"
    assert load_counter("estimate").name == "estimate: 1 token per 4 characters"


def test_auto_uses_tiktoken_cl100k_offline_and_counts_words_as_tokens():
    counter = load_counter("auto")
    assert (counter.source, counter.name) == ("tokenizer", "tiktoken cl100k_base (offline)")
    assert counter("Hello world") == (2, "tokenizer")
    # the mock's text is one vocabulary word per token, each a single cl100k token
    assert counter.count(protocol.content(200)) == 200
    assert counter.count("") == 0


def test_auto_falls_back_to_the_estimate_without_an_offline_tokenizer(monkeypatch):
    monkeypatch.setattr(tokens, "_offline_tiktoken", lambda: None)
    assert load_counter("auto") is tokens.ESTIMATOR


def test_a_tokenizer_json_the_user_names_is_used(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    model = Tokenizer(WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    model.pre_tokenizer = Whitespace()
    path = tmp_path / "tokenizer.json"
    model.save(str(path))
    counter = load_counter(str(path))
    assert (counter.source, counter.name) == ("tokenizer", "tokenizers tokenizer.json")
    assert counter.count("hello world, hello") == 4  # hello / world / , / hello


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/nonexistent/tokenizer.json", "--tokenizer: file not found (got '/nonexistent/tokenizer.json'); "),
        (
            "no_such_encoding",
            "--tokenizer: not a file, auto, estimate or a tiktoken encoding (got 'no_such_encoding'); use auto, "
            "estimate, a tokenizer.json path or one of ",
        ),
    ],
)
def test_a_tokenizer_that_cannot_load_is_one_line_naming_the_flag(spec, message):
    with pytest.raises(TokenizerError) as caught:
        load_counter(spec)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_known_encoding_that_cannot_be_fetched_offline_is_one_line(monkeypatch, tmp_path):
    import tiktoken.load

    def offline(*_args, **_kwargs):
        raise ConnectionError("Failed to resolve host\nmore detail")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # an empty cache: tiktoken would download
    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    with pytest.raises(TokenizerError) as caught:
        load_counter("r50k_base")
    assert str(caught.value) == (
        "--tokenizer: cannot load the tiktoken encoding (got 'r50k_base': ConnectionError: Failed to resolve "
        "host); use auto, estimate, a tokenizer.json path, or set TIKTOKEN_CACHE_DIR to a folder holding the "
        "encoding file"
    )


def test_a_file_that_is_no_tokenizer_is_refused(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")
    with pytest.raises(
        TokenizerError, match=r"^--tokenizer: not a tokenizer.json \(got '.*tokenizer.json': "
    ):
        load_counter(str(bad))

"""The tf-idf vectorizer of modelkit.text, checked against features computed by hand."""

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import modelkit.text
from modelkit.text import (
    VECTORIZER_FILE,
    TfidfVectorizer,
    char_terms,
    chi2_scores,
    load_vectorizer,
    terms,
    tokenize,
)

TEXTS = ["The cat sat.", "The dog sat, the DOG ran!", "A bird"]
# Document frequencies: sat 2, the 2, then bird, cat, dog, ran 1 each ("a" is one character).
VOCABULARY = ["sat", "the", "bird", "cat", "dog", "ran"]


def idf(document_frequency: int, n_documents: int = len(TEXTS)) -> float:
    return math.log((1 + n_documents) / (1 + document_frequency)) + 1


def l2_normalised(values: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in values.values()))
    return {term: v / norm for term, v in values.items()}


def as_dict(row: np.ndarray, vocabulary: list[str]) -> dict[str, float]:
    return {vocabulary[i]: float(row[i]) for i in np.flatnonzero(row)}


def test_standardization_and_tokenization() -> None:
    # Punctuation separates tokens; one-character pieces ("s", "e") are dropped.
    assert tokenize("Hello, WORLD! It's 2004's e-mail_box.") == [
        "hello",
        "world",
        "it",
        "2004",
        "mail_box",
    ]
    # NFKC folds the "fi" ligature and full-width letters; accents are kept.
    assert tokenize("\ufb01nance \uff22\uff22\uff23 Café NAÏVE") == [
        "finance",
        "bbc",
        "café",
        "naïve",
    ]
    assert tokenize("a I . ,; \n\t") == []


def test_vocabulary_ranked_by_document_frequency_then_term() -> None:
    vectorizer = TfidfVectorizer().fit(TEXTS)
    assert vectorizer.vocabulary == VOCABULARY
    assert vectorizer.document_frequency.tolist() == [2, 2, 1, 1, 1, 1]
    assert TfidfVectorizer(max_tokens=3).fit(TEXTS).vocabulary == ["sat", "the", "bird"]
    assert TfidfVectorizer(min_df=2).fit(TEXTS).vocabulary == ["sat", "the"]
    with pytest.raises(ValueError, match="min_df"):
        TfidfVectorizer(min_df=4).fit(TEXTS)


# Two topics; "the" is everywhere, "goal" only in sport, "shares" only in business.
TOPIC_TEXTS = [
    "the goal won the match",
    "the late goal",
    "the match report",
    "the shares fell",
    "the shares rose on profits",
    "the bank report",
]
TOPICS = ["sport", "sport", "sport", "business", "business", "business"]


def chi2_by_hand(present: dict[str, int], df: int) -> float:
    """sum over classes of (observed - expected)^2 / expected, expected = P(class) * df."""
    expected = {topic: TOPICS.count(topic) / len(TOPICS) * df for topic in set(TOPICS)}
    return sum((present.get(t, 0) - e) ** 2 / e for t, e in expected.items())


def test_chi2_scores_match_a_hand_computation() -> None:
    documents = [set(tokenize(text)) for text in TOPIC_TEXTS]
    terms = ["the", "goal", "shares", "match", "report", "profits"]
    expected = [
        chi2_by_hand({"sport": 3, "business": 3}, 6),  # 0: independent of the topic
        chi2_by_hand({"sport": 2}, 2),  # 2.0
        chi2_by_hand({"business": 2}, 2),
        chi2_by_hand({"sport": 2}, 2),
        chi2_by_hand({"sport": 1, "business": 1}, 2),  # 0
        chi2_by_hand({"business": 1}, 1),  # 1.0
    ]
    np.testing.assert_allclose(chi2_scores(documents, TOPICS, terms), expected, rtol=1e-12)
    assert expected[:3] == [0.0, 2.0, 2.0]


def test_chi2_selection_keeps_the_words_that_tell_the_labels_apart() -> None:
    by_frequency = TfidfVectorizer(max_tokens=3).fit(TOPIC_TEXTS)
    assert by_frequency.vocabulary == ["the", "goal", "match"]
    chosen = TfidfVectorizer(max_tokens=3, selection="chi2").fit(TOPIC_TEXTS, TOPICS)
    # Score 2 for goal, match and shares (df 2 each: ties keep term order); "the" scores 0.
    assert chosen.vocabulary == ["goal", "match", "shares"]
    assert chosen.document_frequency.tolist() == [2, 2, 2]
    np.testing.assert_allclose(chosen.idf, [idf(2, 6)] * 3, rtol=1e-12)
    # Serving needs only the stored vocabulary and idf: a reload transforms the same.
    reloaded = TfidfVectorizer.from_dict(chosen.to_dict())
    assert reloaded.selection == "chi2"
    np.testing.assert_array_equal(reloaded.transform(TOPIC_TEXTS), chosen.transform(TOPIC_TEXTS))
    with pytest.raises(ValueError, match="labels"):
        TfidfVectorizer(selection="chi2").fit(TOPIC_TEXTS)
    with pytest.raises(ValueError, match="labels"):
        TfidfVectorizer().fit(TOPIC_TEXTS, TOPICS)
    with pytest.raises(ValueError, match="6 texts"):
        TfidfVectorizer(selection="chi2").fit(TOPIC_TEXTS, TOPICS[:-1])
    with pytest.raises(ValueError, match="selection"):
        TfidfVectorizer(selection="mutual_information")


def test_files_without_a_selection_field_load_as_document_frequency() -> None:
    state = TfidfVectorizer().fit(TEXTS).to_dict()
    del state["selection"]
    assert TfidfVectorizer.from_dict(state).selection == "document_frequency"


def test_idf_is_smoothed() -> None:
    vectorizer = TfidfVectorizer().fit(TEXTS)
    expected = [idf(2), idf(2), idf(1), idf(1), idf(1), idf(1)]
    np.testing.assert_allclose(vectorizer.idf, expected, rtol=1e-12)


def test_sublinear_tf_idf_rows_are_l2_normalised() -> None:
    vectorizer = TfidfVectorizer().fit(TEXTS)
    features = vectorizer.transform(TEXTS)
    assert features.shape == (3, len(VOCABULARY)) and features.dtype == np.float32
    # "the dog sat the dog ran": the and dog twice (tf 1 + ln 2), sat and ran once (tf 1).
    expected = l2_normalised(
        {
            "sat": 1 * idf(2),
            "the": (1 + math.log(2)) * idf(2),
            "dog": (1 + math.log(2)) * idf(1),
            "ran": 1 * idf(1),
        }
    )
    row = as_dict(features[1], VOCABULARY)
    assert row.keys() == expected.keys()
    for term, value in expected.items():
        assert row[term] == pytest.approx(value, rel=1e-6)
    assert as_dict(features[2], VOCABULARY) == {"bird": pytest.approx(1.0)}
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-6)


def test_raw_term_frequency_option() -> None:
    vectorizer = TfidfVectorizer(sublinear_tf=False).fit(TEXTS)
    row = as_dict(vectorizer.transform([TEXTS[1]])[0], VOCABULARY)
    expected = l2_normalised({"sat": idf(2), "the": 2 * idf(2), "dog": 2 * idf(1), "ran": idf(1)})
    assert row == {term: pytest.approx(value, rel=1e-6) for term, value in expected.items()}


def test_unknown_and_empty_texts_give_zero_rows() -> None:
    vectorizer = TfidfVectorizer().fit(TEXTS)
    features = vectorizer.transform(["", "zebra quokka", "!!!"])
    assert features.shape == (3, len(VOCABULARY))
    assert not features.any()
    assert vectorizer.transform([]).shape == (0, len(VOCABULARY))


def test_misuse_is_rejected() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfVectorizer().transform(["text"])
    vectorizer = TfidfVectorizer().fit(TEXTS)
    with pytest.raises(TypeError, match="single string"):
        vectorizer.transform("The cat sat.")
    with pytest.raises(TypeError, match="str"):
        vectorizer.transform([b"bytes"])
    with pytest.raises(ValueError, match="no texts"):
        TfidfVectorizer().fit([])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vectorizer = TfidfVectorizer(max_tokens=5, min_df=1).fit(TEXTS)
    path = vectorizer.save(tmp_path / VECTORIZER_FILE)
    state = json.loads(path.read_text(encoding="utf-8"))
    assert state["vocabulary"] == VOCABULARY[:5]
    assert state["idf"] == vectorizer.idf.tolist()
    texts = [*TEXTS, "the bird sat on the cat"]
    for loaded in (TfidfVectorizer.load(path), load_vectorizer(tmp_path), load_vectorizer(path)):
        assert loaded.vocabulary == vectorizer.vocabulary
        assert (loaded.max_tokens, loaded.min_df, loaded.sublinear_tf) == (5, 1, True)
        np.testing.assert_array_equal(loaded.transform(texts), vectorizer.transform(texts))
        # A fitting-time figure, not part of the file: the description leaves it out.
        assert loaded.candidate_terms is None and "candidate_terms" not in loaded.describe()


def test_files_of_another_format_are_refused(tmp_path: Path) -> None:
    state = TfidfVectorizer().fit(TEXTS).to_dict()
    path = tmp_path / VECTORIZER_FILE
    path.write_text(json.dumps({**state, "token_pattern": r"\S+"}))
    with pytest.raises(ValueError, match="token_pattern"):
        TfidfVectorizer.load(path)
    path.write_text(json.dumps({**state, "idf": state["idf"][:-1]}))
    with pytest.raises(ValueError, match="length"):
        TfidfVectorizer.load(path)


def test_preprocessing_description_names_the_file_and_steps() -> None:
    description = TfidfVectorizer(max_tokens=4).fit(TEXTS).describe()
    assert description["vectorizer"] == VECTORIZER_FILE
    assert description["vocabulary_size"] == 4
    # Every distinct token of TEXTS met min_df=1: how many the cap of 4 chose from.
    assert description["candidate_terms"] == len({t for text in TEXTS for t in tokenize(text)})
    assert any("ln((1 + n_documents) / (1 + df)) + 1" in step for step in description["steps"])


def test_a_megabyte_of_text_is_vectorised_in_linear_time() -> None:
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(5_000)]
    vectorizer = TfidfVectorizer().fit([" ".join(rng.choice(words, 50)) for _ in range(200)])
    megabyte = " ".join(rng.choice(words, 120_000))
    assert len(megabyte) > 1_000_000
    started = time.perf_counter()
    one_text = vectorizer.transform([megabyte])
    many_texts = vectorizer.transform([megabyte[i : i + 2_000] for i in range(0, 1_000_000, 2_000)])
    elapsed = time.perf_counter() - started
    # Linear work is about 0.2 s on a shared core; a quadratic implementation takes minutes.
    assert elapsed < 3.0
    assert one_text.shape == (1, vectorizer.size) and many_texts.shape == (500, vectorizer.size)
    np.testing.assert_allclose(np.linalg.norm(many_texts, axis=1), 1.0, rtol=1e-5)


def test_importing_the_vectorizer_needs_neither_tensorflow_nor_sklearn() -> None:
    code = (
        "import sys, modelkit, modelkit.text\n"
        "heavy = {'tensorflow', 'keras', 'sklearn', 'onnxruntime'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Word pairs (ngrams=2)


def test_word_pairs_are_adjacent_tokens_joined_by_a_space() -> None:
    assert terms("The cat sat.", ngrams=2) == ["the", "cat", "sat", "the cat", "cat sat"]
    # A dropped one-character token does not break a pair: pairs are of kept tokens.
    assert terms("A bird, a cat", ngrams=2) == ["bird", "cat", "bird cat"]
    assert terms("The cat sat.") == tokenize("The cat sat.")


def test_word_pairs_are_counted_and_weighted_like_words() -> None:
    vectorizer = TfidfVectorizer(ngrams=2).fit(TEXTS)
    # Pairs are ranked with the words: by document frequency, then by term.
    assert vectorizer.vocabulary[:4] == ["sat", "the", "bird", "cat"]
    assert {"the cat", "cat sat", "the dog", "dog sat", "sat the", "dog ran"} <= set(
        vectorizer.vocabulary
    )
    row = as_dict(vectorizer.transform(["The dog sat, the DOG ran!"])[0], vectorizer.vocabulary)
    n = len(TEXTS)
    weights = {
        "the": (1 + math.log(2)) * idf(2, n),
        "dog": (1 + math.log(2)) * idf(1, n),
        "sat": idf(2, n),
        "ran": idf(1, n),
        # The pair "the dog" occurs twice; "dog sat", "sat the", "dog ran" once.
        "the dog": (1 + math.log(2)) * idf(1, n),
        "dog sat": idf(1, n),
        "sat the": idf(1, n),
        "dog ran": idf(1, n),
    }
    expected = l2_normalised(weights)
    assert row.keys() == expected.keys()
    for term, value in expected.items():
        assert row[term] == pytest.approx(value, rel=1e-6)


def test_chi2_chooses_among_words_and_pairs_within_the_cap() -> None:
    texts = ["interest rate rise", "interest rate cut", "rate of interest", "rate the match"]
    labels = ["economy", "economy", "other", "other"]
    vectorizer = TfidfVectorizer(max_tokens=3, ngrams=2, selection="chi2").fit(texts, labels)
    assert vectorizer.size == 3
    assert vectorizer.vocabulary[0] == "interest rate"  # in both economy texts, no other


def test_word_pairs_survive_saving_and_older_files_read_as_words(tmp_path: Path) -> None:
    vectorizer = TfidfVectorizer(ngrams=2).fit(TEXTS)
    path = vectorizer.save(tmp_path / VECTORIZER_FILE)
    loaded = TfidfVectorizer.load(path)
    assert loaded.ngrams == 2
    np.testing.assert_array_equal(loaded.transform(TEXTS), vectorizer.transform(TEXTS))
    assert "add each pair of adjacent tokens" in " ".join(vectorizer.describe()["steps"])
    # A version 1 file (written before ngrams existed) means words only, whatever it says.
    state = TfidfVectorizer().fit(TEXTS).to_dict()
    version_1 = {key: value for key, value in state.items() if key != "ngrams"}
    version_1["format_version"] = 1
    assert TfidfVectorizer.from_dict(version_1).ngrams == 1
    with pytest.raises(ValueError, match="version"):
        TfidfVectorizer.from_dict({**state, "format_version": 4})
    with pytest.raises(ValueError, match="ngrams"):
        TfidfVectorizer(ngrams=3)


def test_char_ngrams_are_those_of_the_space_padded_tokens() -> None:
    assert char_terms("rate") == [
        " ra", "rat", "ate", "te ",  # n = 3
        " rat", "rate", "ate ",  # n = 4
        " rate", "rate ",  # n = 5
    ]  # fmt: skip
    # " ab " has 4 characters: its 3-grams, then itself once for n = 4 (and no n = 5).
    assert char_terms("ab") == [" ab", "ab ", " ab "]
    assert char_terms("abc", (2, 3)) == [" a", "ab", "bc", "c ", " ab", "abc", "bc "]
    # Tokens as for words (one-character tokens dropped), then each token's n-grams in order.
    assert terms("A cat, ab!", analyzer="char_wb") == char_terms("cat") + char_terms("ab")


def test_char_wb_features_match_scikit_learn() -> None:
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    # Lowercase words of two or more letters and single spaces: both tokenizers agree.
    rng = np.random.default_rng(0)
    words = ["rate", "rates", "rated", "interest", "pirate", "ab", "goal", "goals", "cat"]
    texts = [" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(30)]
    reference = sklearn_text.TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True
    )
    expected = reference.fit_transform(texts).toarray()
    vectorizer = TfidfVectorizer(analyzer="char_wb", max_tokens=100_000).fit(texts)
    assert set(vectorizer.vocabulary) == set(reference.vocabulary_)
    columns = [reference.vocabulary_[term] for term in vectorizer.vocabulary]
    np.testing.assert_allclose(vectorizer.idf, reference.idf_[columns], rtol=1e-12)
    np.testing.assert_allclose(vectorizer.transform(texts), expected[:, columns], atol=1e-6)


def test_char_wb_transform_caches_token_columns_without_changing_features(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = ["The rates rose", "A pirate rated the cat", "Cats and rats"]
    vectorizer = TfidfVectorizer(analyzer="char_wb", max_tokens=40).fit(texts)
    unseen = ["rate pirates", "", "zz"]
    # The features by definition: count each text's in-vocabulary n-grams, weigh, normalise.
    for text, row in zip(texts + unseen, vectorizer.transform(texts + unseen), strict=True):
        counts: dict[str, int] = {}
        for term in terms(text, analyzer="char_wb"):
            if term in vectorizer.vocabulary:
                counts[term] = counts.get(term, 0) + 1
        index = {term: i for i, term in enumerate(vectorizer.vocabulary)}
        weights = {t: (1 + math.log(c)) * vectorizer.idf[index[t]] for t, c in counts.items()}
        expected = l2_normalised(weights) if weights else {}
        assert as_dict(row, vectorizer.vocabulary) == pytest.approx(expected, rel=1e-6)
    first = vectorizer.transform(texts + unseen)
    assert first.shape == (6, 40) and not first[4:].any()  # "zz" has no kept n-gram
    # A full cache starts again: the same features with a cache of two tokens.
    monkeypatch.setattr(modelkit.text, "CHAR_CACHE_TOKENS", 2)
    vectorizer._char_cache.clear()
    np.testing.assert_array_equal(vectorizer.transform(texts + unseen), first)
    assert len(vectorizer._char_cache) <= 2


def test_char_wb_survives_saving_and_older_files_read_as_words(tmp_path: Path) -> None:
    vectorizer = TfidfVectorizer(analyzer="char_wb", selection="chi2").fit(
        TEXTS, ["pets", "pets", "birds"]
    )
    path = vectorizer.save(tmp_path / VECTORIZER_FILE)
    loaded = TfidfVectorizer.load(path)
    assert (loaded.analyzer, loaded.char_ngrams) == ("char_wb", (3, 5))
    np.testing.assert_array_equal(loaded.transform(TEXTS), vectorizer.transform(TEXTS))
    description = vectorizer.describe()
    assert description["analyzer"] == "char_wb" and description["char_ngrams"] == [3, 5]
    assert "character n-grams" in " ".join(description["steps"])
    # Version 2 files (the committed classifier versions) have no analyzer: words.
    state = TfidfVectorizer().fit(TEXTS).to_dict()
    version_2 = {k: v for k, v in state.items() if k not in ("analyzer", "char_ngrams")}
    assert TfidfVectorizer.from_dict({**version_2, "format_version": 2}).analyzer == "word"
    with pytest.raises(ValueError, match="analyzer"):
        TfidfVectorizer(analyzer="char")
    with pytest.raises(ValueError, match="word pairs"):
        TfidfVectorizer(analyzer="char_wb", ngrams=2)
    for wrong in ((5, 3), (0, 2), ("3", "5"), (3, 4, 5)):
        with pytest.raises(ValueError, match="char_ngrams"):
            TfidfVectorizer(analyzer="char_wb", char_ngrams=wrong)  # type: ignore[arg-type]

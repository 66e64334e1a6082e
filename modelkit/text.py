"""The tf-idf text vectorizer: one implementation for training and serving, numpy + stdlib only.

    vectorizer = TfidfVectorizer(max_tokens=10_000).fit(train_texts)
    features = vectorizer.transform(texts)            # float32 [N, V]
    vectorizer.save(version_dir / "vectorizer.json")

    model = load_model("models", "classifier")        # in the service
    probabilities = model.predict(load_vectorizer(model).transform(texts))

The steps, so that a caller in another language can reproduce the features from
`vectorizer.json` alone:

1. Standardize: Unicode NFKC normalization, then lowercase (`str.lower`).
2. Tokenize: every run of two or more Unicode word characters (letters, digits, underscore;
   the regex `\\w{2,}`); punctuation, whitespace and one-character tokens are dropped.
   With `ngrams=2` the terms are the tokens and every pair of adjacent tokens, joined by one
   space ("interest rate"); tokens never contain a space, so the two kinds cannot collide.
   With `analyzer="char_wb"` the terms are instead the character n-grams of each token padded
   by one space on each side, for n in `char_ngrams` (3 to 5): " rate " gives " ra", "rat",
   "ate", "te ", " rat", "rate", "ate ", " rate". A padded token no longer than n is one term
   for that n and ends its n-grams (scikit-learn's `analyzer="char_wb"` on the same tokens).
   They carry spelling, inflections and parts of unseen words, which short texts need.
3. Count the in-vocabulary terms of each text (other terms are ignored); `vocabulary[i]`
   is feature column i.
4. Term frequency: `1 + ln(count)` with `sublinear_tf` (the default), else the raw count.
5. Weight by `idf[i]`, stored in the file. Fitting computes the smoothed
   `idf = ln((1 + n_documents) / (1 + document_frequency)) + 1`, as scikit-learn does.
6. L2-normalise each row; a text without any vocabulary word stays a row of zeros.

The vocabulary is chosen among the terms found in at least `min_df` documents, by one of two
criteria (`selection`): "document_frequency" keeps the `max_tokens` most frequent terms;
"chi2" (supervised: `fit(texts, labels)`) keeps the `max_tokens` terms whose presence in a
document depends most on its label, by the chi-squared statistic of the term-presence x label
table, the score scikit-learn's `chi2` gives binary features. Ties are broken by document
frequency, then by the term's code points, so fitting is deterministic. Serving needs neither
criterion: only the stored vocabulary and idf. Transform costs one regex pass and one dict
look-up per token (char_wb: its n-grams' columns, computed once per distinct token and
cached) plus numpy work on the non-zeros, linear in the text length.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain, pairwise
from pathlib import Path
from typing import Any

import numpy as np

VECTORIZER_FILE = "vectorizer.json"
FORMAT = "modelkit.text.TfidfVectorizer"
# Version 2 added `ngrams`, version 3 `analyzer` and `char_ngrams`; a version 1 file is read
# as ngrams=1 (words only), versions 1 and 2 as analyzer="word".
FORMAT_VERSION = 3
READABLE_FORMAT_VERSIONS = (1, 2, 3)
NGRAMS = (1, 2)
ANALYZERS = ("word", "char_wb")
DEFAULT_CHAR_NGRAMS = (3, 5)
# Tokens whose in-vocabulary character n-grams transform keeps (Zipf: a few thousand tokens
# make most of any text); past this the cache starts again, so memory stays bounded.
CHAR_CACHE_TOKENS = 100_000
DEFAULT_MAX_TOKENS = 10_000
SELECTIONS = ("document_frequency", "chi2")
UNICODE_NORMALIZATION = "NFKC"
TOKEN_PATTERN = r"\w{2,}"
_TOKEN = re.compile(TOKEN_PATTERN)


def standardize(text: str) -> str:
    """NFKC-normalised, lowercased text."""
    return unicodedata.normalize(UNICODE_NORMALIZATION, text).lower()


def tokenize(text: str) -> list[str]:
    """The tokens of a standardized text, in order."""
    return _TOKEN.findall(standardize(text))


def terms(
    text: str,
    ngrams: int = 1,
    *,
    analyzer: str = "word",
    char_ngrams: tuple[int, int] = DEFAULT_CHAR_NGRAMS,
) -> list[str]:
    """The tokens of a text, then (ngrams=2) each pair of adjacent tokens joined by a space;
    or (analyzer="char_wb") the character n-grams of each space-padded token."""
    tokens = tokenize(text)
    if analyzer == "char_wb":
        return list(chain.from_iterable(char_terms(token, char_ngrams) for token in tokens))
    if ngrams == 1:
        return tokens
    return tokens + [f"{first} {second}" for first, second in pairwise(tokens)]


def char_terms(token: str, char_ngrams: tuple[int, int] = DEFAULT_CHAR_NGRAMS) -> list[str]:
    """The character n-grams of " token ", n from char_ngrams[0] to char_ngrams[1]."""
    padded = f" {token} "
    found = []
    for n in range(char_ngrams[0], char_ngrams[1] + 1):
        if len(padded) <= n:
            found.append(padded)
            break
        found.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return found


class TfidfVectorizer:
    """Standardization, tokenization, a vocabulary and idf weights: texts -> float32 [N, V]."""

    def __init__(
        self,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        min_df: int = 1,
        sublinear_tf: bool = True,
        selection: str = "document_frequency",
        ngrams: int = 1,
        analyzer: str = "word",
        char_ngrams: tuple[int, int] = DEFAULT_CHAR_NGRAMS,
    ) -> None:
        if max_tokens < 1 or min_df < 1:
            raise ValueError("max_tokens and min_df must be positive")
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if ngrams not in NGRAMS:
            raise ValueError(f"ngrams must be one of {NGRAMS}, got {ngrams!r}")
        if analyzer not in ANALYZERS:
            raise ValueError(f"analyzer must be one of {ANALYZERS}, got {analyzer!r}")
        if analyzer == "char_wb" and ngrams != 1:
            raise ValueError("ngrams (word pairs) applies to analyzer='word' only")
        if not (
            len(char_ngrams) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in char_ngrams)
            and 1 <= char_ngrams[0] <= char_ngrams[1]
        ):
            raise ValueError(f"char_ngrams must be (low, high), 1 <= low <= high: {char_ngrams}")
        self.ngrams = ngrams
        self.analyzer = analyzer
        self.char_ngrams = (char_ngrams[0], char_ngrams[1])
        self._char_cache: dict[str, list[int]] = {}
        self.max_tokens = max_tokens
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.selection = selection
        self.vocabulary: list[str] = []
        self.document_frequency = np.zeros(0, dtype=np.int64)
        self.idf = np.zeros(0, dtype=np.float64)
        self.n_documents = 0
        # Terms that met min_df when fitted, before max_tokens cut them down (None once
        # loaded from a file): shows how much of the corpus the cap left out.
        self.candidate_terms: int | None = None
        self._index: dict[str, int] = {}

    @property
    def is_fitted(self) -> bool:
        return bool(self.vocabulary)

    @property
    def size(self) -> int:
        """V, the number of features (columns of `transform`)."""
        return len(self.vocabulary)

    def fit(self, texts: Sequence[str], labels: Sequence[Any] | None = None) -> TfidfVectorizer:
        """Choose the vocabulary and idf weights; `labels` (one per text) only for chi2."""
        texts = _checked_texts(texts)
        if (self.selection == "chi2") != (labels is not None):
            raise ValueError("labels are needed for selection='chi2' and only for it")
        documents = [set(self.terms(text)) for text in texts]
        document_frequency = Counter(chain.from_iterable(documents))
        candidates = sorted(
            (item for item in document_frequency.items() if item[1] >= self.min_df),
            key=lambda item: (-item[1], item[0]),
        )
        if not candidates:
            raise ValueError(f"no token occurs in at least min_df={self.min_df} texts")
        if labels is not None:
            scores = chi2_scores(documents, labels, [term for term, _ in candidates])
            # A stable sort keeps the document-frequency order among equal scores.
            candidates = [candidates[i] for i in np.argsort(-scores, kind="stable")]
        ranked = candidates[: self.max_tokens]
        frequencies = np.array([count for _, count in ranked], dtype=np.int64)
        self._set_state(
            vocabulary=[term for term, _ in ranked],
            document_frequency=frequencies,
            idf=np.log((1 + len(texts)) / (1 + frequencies)) + 1.0,
            n_documents=len(texts),
        )
        self.candidate_terms = len(candidates)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """The L2-normalised tf-idf rows of `texts`, float32 [len(texts), V]."""
        if not self.is_fitted:
            raise RuntimeError("the vectorizer is not fitted")
        texts = _checked_texts(texts, allow_empty=True)
        if self.analyzer == "char_wb":
            token_ids = [self._char_columns(text) for text in texts]
        else:
            lookup = self._index.get
            token_ids = [[lookup(term, -1) for term in terms(text, self.ngrams)] for text in texts]
        ids = np.fromiter(chain.from_iterable(token_ids), dtype=np.int64)
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), [len(t) for t in token_ids])
        known = ids >= 0
        # One sort of the (row, column) pairs counts every term of every text.
        cells, counts = np.unique(rows[known] * self.size + ids[known], return_counts=True)
        rows, columns = np.divmod(cells, self.size)
        term_frequency = 1.0 + np.log(counts) if self.sublinear_tf else counts.astype(np.float64)
        weights = term_frequency * self.idf[columns]
        norms = np.sqrt(np.bincount(rows, weights=weights * weights, minlength=len(texts)))
        features = np.zeros((len(texts), self.size), dtype=np.float32)
        features[rows, columns] = weights / norms[rows]
        return features

    def terms(self, text: str) -> list[str]:
        """The terms of one text under this vectorizer's settings (before the vocabulary)."""
        return terms(text, self.ngrams, analyzer=self.analyzer, char_ngrams=self.char_ngrams)

    def _char_columns(self, text: str) -> list[int]:
        # A token's n-grams are the same wherever it occurs, so their columns are computed
        # once per distinct token; this keeps char_wb's transform near the word analyzer's.
        cache, lookup, found = self._char_cache, self._index.get, []
        for token in tokenize(text):
            columns = cache.get(token)
            if columns is None:
                columns = [
                    column
                    for term in char_terms(token, self.char_ngrams)
                    if (column := lookup(term)) is not None
                ]
                if len(cache) >= CHAR_CACHE_TOKENS:
                    cache.clear()
                cache[token] = columns
            found.extend(columns)
        return found

    def fit_transform(
        self, texts: Sequence[str], labels: Sequence[Any] | None = None
    ) -> np.ndarray:
        return self.fit(texts, labels).transform(texts)

    def describe(self) -> dict[str, Any]:
        """The `preprocessing` block of a model's metadata."""
        return {
            "vectorizer": VECTORIZER_FILE,
            "format": FORMAT,
            "input": "a list of UTF-8 texts",
            "output": f"float32 [N, {self.size}] tf-idf features, the model's input",
            "steps": [
                f"standardize: Unicode {UNICODE_NORMALIZATION} normalization, then lowercase",
                f"tokenize: every match of the regex {TOKEN_PATTERN} (runs of two or more "
                "Unicode word characters); other characters separate tokens",
                *(
                    ["add each pair of adjacent tokens, joined by one space, as a term"]
                    if self.ngrams == 2
                    else []
                ),
                *(
                    [
                        "replace each token by the character n-grams of the token padded with"
                        f" one space on each side, n = {self.char_ngrams[0]} to"
                        f" {self.char_ngrams[1]}; a padded token no longer than n is one term"
                        " and ends its n-grams"
                    ]
                    if self.analyzer == "char_wb"
                    else []
                ),
                "count the terms found in `vocabulary` (index = feature column); ignore others",
                "tf = 1 + ln(count)" if self.sublinear_tf else "tf = count",
                "multiply by `idf` (stored); fitted as ln((1 + n_documents) / (1 + df)) + 1",
                "L2-normalise each row (a row without vocabulary words stays zero)",
            ],
            "max_tokens": self.max_tokens,
            "min_df": self.min_df,
            "selection": self.selection,
            "ngrams": self.ngrams,
            "analyzer": self.analyzer,
            **({"char_ngrams": list(self.char_ngrams)} if self.analyzer == "char_wb" else {}),
            "sublinear_tf": self.sublinear_tf,
            "vocabulary_size": self.size,
            **({} if self.candidate_terms is None else {"candidate_terms": self.candidate_terms}),
            "implementation": "modelkit.text.TfidfVectorizer (numpy only)",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "unicode_normalization": UNICODE_NORMALIZATION,
            "lowercase": True,
            "token_pattern": TOKEN_PATTERN,
            "ngrams": self.ngrams,
            "analyzer": self.analyzer,
            "char_ngrams": list(self.char_ngrams),
            "max_tokens": self.max_tokens,
            "min_df": self.min_df,
            "selection": self.selection,
            "sublinear_tf": self.sublinear_tf,
            "norm": "l2",
            "n_documents": self.n_documents,
            "vocabulary": self.vocabulary,
            "document_frequency": self.document_frequency.tolist(),
            "idf": self.idf.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TfidfVectorizer:
        version = state.get("format_version")
        if state.get("format") != FORMAT or version not in READABLE_FORMAT_VERSIONS:
            raise ValueError(
                f"not a {FORMAT} version {' or '.join(map(str, READABLE_FORMAT_VERSIONS))} file: "
                f"{state.get('format')!r} version {state.get('format_version')!r}"
            )
        expected = {
            "unicode_normalization": UNICODE_NORMALIZATION,
            "lowercase": True,
            "token_pattern": TOKEN_PATTERN,
            "norm": "l2",
        }
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(f"{key}={state.get(key)!r} is not supported (only {value!r})")
        vectorizer = cls(
            max_tokens=state["max_tokens"],
            min_df=state["min_df"],
            sublinear_tf=state["sublinear_tf"],
            # Informational (serving needs only the vocabulary); absent in older files.
            selection=state.get("selection", "document_frequency"),
            ngrams=state.get("ngrams", 1) if version >= 2 else 1,
            analyzer=state["analyzer"] if version >= 3 else "word",
            char_ngrams=tuple(state["char_ngrams"]) if version >= 3 else DEFAULT_CHAR_NGRAMS,
        )
        vectorizer._set_state(
            vocabulary=list(state["vocabulary"]),
            document_frequency=np.asarray(state["document_frequency"], dtype=np.int64),
            idf=np.asarray(state["idf"], dtype=np.float64),
            n_documents=int(state["n_documents"]),
        )
        return vectorizer

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TfidfVectorizer:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def _set_state(
        self,
        *,
        vocabulary: list[str],
        document_frequency: np.ndarray,
        idf: np.ndarray,
        n_documents: int,
    ) -> None:
        if not len(vocabulary) == len(document_frequency) == len(idf):
            raise ValueError("vocabulary, document_frequency and idf differ in length")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("the vocabulary has duplicate terms")
        if not np.all(np.isfinite(idf)):
            raise ValueError("idf weights must be finite")
        self.vocabulary = vocabulary
        self.document_frequency = document_frequency
        self.idf = idf
        self.n_documents = n_documents
        self._index = {term: index for index, term in enumerate(vocabulary)}
        self._char_cache = {}


def chi2_scores(
    documents: Sequence[set[str]], labels: Sequence[Any], terms: Sequence[str]
) -> np.ndarray:
    """Chi-squared statistic of each term's presence against the labels, float64 [len(terms)].

    For term t and class c, observed[c, t] is the number of class-c documents containing t and
    expected[c, t] = P(c) * df(t); the score sums (observed - expected)^2 / expected over c.
    """
    labels = list(labels)
    if len(labels) != len(documents):
        raise ValueError(f"{len(labels)} labels for {len(documents)} texts")
    classes = {label: i for i, label in enumerate(sorted(set(labels), key=repr))}
    column = {term: i for i, term in enumerate(terms)}
    observed = np.zeros((len(classes), len(terms)), dtype=np.float64)
    for document, label in zip(documents, labels, strict=True):
        ids = [column[term] for term in document if term in column]
        observed[classes[label], ids] += 1.0
    class_share = np.bincount([classes[label] for label in labels]) / len(labels)
    expected = np.outer(class_share, observed.sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = np.where(expected > 0, (observed - expected) ** 2 / expected, 0.0)
    return cells.sum(axis=0)


def load_vectorizer(source: Any) -> TfidfVectorizer:
    """The vectorizer of a model version: a LoadedModel, a version directory or the JSON file.

    For a LoadedModel (whose artifacts `load_model` already checked) the file named in
    metadata's `preprocessing.vectorizer` is read and its size checked against the model input.
    """
    metadata = getattr(source, "metadata", None)
    if metadata is None:
        path = Path(source)
        return TfidfVectorizer.load(path / VECTORIZER_FILE if path.is_dir() else path)
    filename = metadata.get("preprocessing", {}).get("vectorizer", VECTORIZER_FILE)
    vectorizer = TfidfVectorizer.load(Path(source.path) / filename)
    width = source.spec.input.shape[-1]
    if width != vectorizer.size:
        raise ValueError(f"{filename} has {vectorizer.size} features, the model expects {width}")
    return vectorizer


def _checked_texts(texts: Iterable[str], *, allow_empty: bool = False) -> list[str]:
    if isinstance(texts, str | bytes):
        raise TypeError("pass a sequence of texts, not a single string")
    texts = list(texts)
    if not texts and not allow_empty:
        raise ValueError("no texts given")
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be str, got {type(text).__name__}")
    return texts

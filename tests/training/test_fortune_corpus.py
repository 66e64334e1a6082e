"""The outside corpus: fortune files -> a stratified text,category split, repeats dropped."""

import csv
from pathlib import Path

import pytest

from training.classifier import read_news_csv
from training.fortune_corpus import TOPICS, build_corpus, main, read_cookies


def write_fortunes(path: Path, cookies: list[str]) -> Path:
    path.write_text("\n%\n".join(cookies) + "\n%\n", encoding="utf-8")
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Two topic files of ten cookies each, one cookie in both, one in `art` twice."""
    directory = tmp_path / "fortunes"
    directory.mkdir()
    art = [f"Art cookie number {i}:\n  painted   and\tsculpted." for i in range(10)]
    law = [f"Law cookie number {i}: the court rules." for i in range(10)]
    write_fortunes(directory / "art", [*art, "Shared wisdom.", art[0]])
    write_fortunes(directory / "law", [*law, "Shared wisdom."])
    write_fortunes(directory / "zippy", ["Not a topic file."])
    return directory


def test_cookies_are_split_on_percent_lines_with_overstrike_and_spacing_removed(
    tmp_path: Path,
) -> None:
    path = write_fortunes(
        tmp_path / "art", ["B\x08Bo\x08ol\x08ld and _\x08u_\x08n_\x08d_\x08e_\x08r", "50% off\n\n"]
    )
    cookies = read_cookies(path, "art")
    assert [cookie.text for cookie in cookies] == ["Bold and under", "50% off"]
    assert {cookie.category for cookie in cookies} == {"art"}


def test_repeated_cookies_are_dropped_so_no_text_is_in_both_parts(source: Path) -> None:
    cookies = build_corpus(source, ("art", "law"))
    texts = [cookie.text for cookie in cookies]
    assert len(texts) == len(set(texts)) == 19  # art's repeated cookie and the shared one
    assert "Shared wisdom." not in texts
    assert "Art cookie number 0: painted and sculpted." not in texts


def test_the_cli_writes_a_stratified_split_that_the_classifier_reads(
    source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "split"
    main(["--source", str(source), "--out", str(out), "--topics", "art", "law"])
    train, test = read_news_csv(out / "train.csv"), read_news_csv(out / "test.csv")
    assert (len(train.texts), len(test.texts)) == (13, 6)
    assert sorted(test.categories) == ["art"] * 3 + ["law"] * 3
    assert not set(train.texts) & set(test.texts)
    with open(out / "train.csv", newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == ["text", "category"]


def test_a_missing_topic_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--source", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "install Debian's `fortunes` package" in error
    assert all(topic in error for topic in TOPICS)  # the default topics, each named

"""Inputs -> sources: folders, globs, URLs, file:// URIs, pastes and piped lists."""

from __future__ import annotations

import io
import os
import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui_captioner.core.jobs import Source
from tui_captioner.core.sources import (
    InputProblem,
    iter_sources,
    parse_pasted_text,
    read_stdin_inputs,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sources(*inputs: str) -> list[Source]:
    items = list(iter_sources(inputs))
    assert all(isinstance(i, Source) for i in items), items
    return [i for i in items if isinstance(i, Source)]


def problems(*inputs: str) -> list[InputProblem]:
    return [i for i in iter_sources(inputs) if isinstance(i, InputProblem)]


def paths(items: list[Source]) -> list[Path | None]:
    return [s.path for s in items]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for rel in [
        "b.JPG",
        "a.png",
        "notes.txt",
        "sub/c.HeIc",
        "sub/deeper/d.webp",
        "sub/e.tiff",
        ".hidden.png",
        ".cache/f.png",
        "Z/g.gif",
    ]:
        touch(root / rel)
    return root


def test_folder_is_walked_recursively_sorted_and_filtered(tree: Path) -> None:
    found = sources(str(tree))
    rel = [str(p.relative_to(tree)) for p in paths(found) if p]
    assert rel == ["a.png", "b.JPG", "sub/c.HeIc", "sub/deeper/d.webp", "sub/e.tiff", "Z/g.gif"]
    assert all(s.path and s.path.is_absolute() for s in found)
    assert found[0].given == os.path.join(str(tree), "a.png")


def test_folder_sources_are_yielded_lazily(tree: Path) -> None:
    it = iter_sources([str(tree)])
    first = next(it)
    assert isinstance(first, Source) and first.path is not None
    assert first.path.name == "a.png"


def test_relative_folder_keeps_its_spelling_in_given(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree.parent)
    found = sources("photos")
    assert found[0].given == os.path.join("photos", "a.png")
    assert found[0].path == (tree / "a.png").resolve()


def test_explicit_file_is_taken_whatever_its_extension(tree: Path) -> None:
    found = sources(str(tree / "notes.txt"))
    assert paths(found) == [(tree / "notes.txt").resolve()]
    assert found[0].given == str(tree / "notes.txt")


def test_explicit_hidden_folder_is_walked(tree: Path) -> None:
    assert [p.name for p in paths(sources(str(tree / ".cache"))) if p] == ["f.png"]


def test_folder_without_images_is_a_problem(tree: Path) -> None:
    empty = tree / "empty"
    touch(empty / "readme.txt")
    touch(empty / ".hidden.png")
    assert problems(str(empty)) == [InputProblem(str(empty), f"No images found in {empty}")]


def test_missing_path_is_a_problem(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.png")
    assert list(iter_sources([missing])) == [
        InputProblem(missing, f"No such file or folder: {missing}")
    ]


def test_empty_inputs_are_ignored() -> None:
    assert list(iter_sources(["", "   "])) == []


def test_duplicates_are_yielded_once(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    found = sources(
        "a.png",
        str(tree / "a.png"),
        f"{tree}/sub/../a.png",
        str(tree),  # the folder holding a.png again
        str(tree / "sub"),  # a folder already walked
        "https://example.com/x.png",
        "https://EXAMPLE.com/x.png#top",
    )
    keys = [s.key for s in found]
    assert len(keys) == len(set(keys))
    assert keys.count(str((tree / "a.png").resolve())) == 1
    assert len(found) == 6 + 1  # six images in the tree, one URL
    assert found[0].given == "a.png"


def test_subfolder_then_folder_yields_each_file_once(tree: Path) -> None:
    found = sources(str(tree / "sub"), str(tree))
    assert len(found) == 6
    assert len({s.key for s in found}) == 6


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loop_terminates(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root / "a" / "one.png")
    (root / "a" / "back").symlink_to(root, target_is_directory=True)  # loop to an ancestor
    (root / "self").symlink_to(root / "self")  # a link to itself
    found = sources(str(root))
    assert [p.name for p in paths(found) if p] == ["one.png"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinked_folder_is_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    touch(elsewhere / "x.jpg")
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    found = sources(str(root))
    assert [p.name for p in paths(found) if p] == ["x.jpg"]


def test_glob_patterns(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    assert [p.name for p in paths(sources("*.png")) if p] == ["a.png"]
    assert [p.name for p in paths(sources("?.JPG")) if p] == ["b.JPG"]
    assert [p.name for p in paths(sources("[ab].*")) if p] == ["a.png", "b.JPG"]
    deep = sorted(p.name for p in paths(sources("**/*.*")) if p)
    assert deep == ["a.png", "b.JPG", "c.HeIc", "d.webp", "e.tiff", "g.gif"]  # no hidden
    assert all(s.path and s.path.is_absolute() for s in sources("**/*.webp"))


def test_glob_matching_a_folder_walks_it(tree: Path) -> None:
    found = sources(str(tree / "su*"))
    assert [p.name for p in paths(found) if p] == ["c.HeIc", "d.webp", "e.tiff"]


def test_glob_matching_nothing_is_a_problem(tree: Path) -> None:
    pattern = str(tree / "*.bmp")
    assert problems(pattern) == [InputProblem(pattern, f"No images match {pattern}")]
    text_only = str(tree / "*.txt")
    assert problems(text_only) == [InputProblem(text_only, f"No images match {text_only}")]


def test_existing_file_with_glob_characters_is_literal(tmp_path: Path) -> None:
    odd = touch(tmp_path / "shot[1].png")
    touch(tmp_path / "shot1.png")
    assert paths(sources(str(odd))) == [odd.resolve()]


def test_urls() -> None:
    found = sources("https://example.com/cat.png?x=1", "HTTP://Example.COM/dog.jpg")
    assert [s.url for s in found] == [
        "https://example.com/cat.png?x=1",
        "http://example.com/dog.jpg",
    ]
    assert found[1].given == "HTTP://Example.COM/dog.jpg"
    assert all(s.path is None for s in found)


@pytest.mark.parametrize(
    "given",
    ["ftp://example.com/a.png", "data:image/png;base64,AAAA", "javascript:alert(1)"],
)
def test_other_schemes_are_problems(given: str) -> None:
    assert problems(given) == [
        InputProblem(given, f"Only http and https URLs are supported: {given}")
    ]


def test_url_without_host_is_a_problem() -> None:
    assert problems("https://") == [InputProblem("https://", "Not a valid URL: https://")]


def test_file_uris_are_decoded(tmp_path: Path) -> None:
    image = touch(tmp_path / "my photos" / "a b.png")
    uri = image.as_uri()
    assert "%20" in uri
    for spelling in (uri, uri.replace("file://", "file://localhost")):
        found = sources(spelling)
        assert paths(found) == [image.resolve()]
        assert found[0].given == spelling


def test_file_uri_of_a_folder(tmp_path: Path) -> None:
    image = touch(tmp_path / "my photos" / "a b.png")
    found = sources(image.parent.as_uri())
    assert paths(found) == [image.resolve()]
    assert found[0].given == str(image)


def test_file_uri_on_another_host_is_a_problem() -> None:
    given = "file://server/share/a.png"
    assert problems(given)[0].message.startswith("file:// URIs on another computer")


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    image = touch(tmp_path / "pics" / "a.png")
    assert paths(sources("~/pics/a.png")) == [image.resolve()]
    assert paths(sources("~/pics")) == [image.resolve()]


def test_unreadable_subfolder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "ok.png")
    locked = tmp_path / "locked"
    touch(locked / "x.png")
    if os.name != "posix" or os.geteuid() == 0:  # root reads anything: simulate the refusal
        real_scandir = os.scandir

        def scandir(path: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    locked.chmod(0)
    try:
        items = list(iter_sources([str(tmp_path)]))
    finally:
        locked.chmod(0o755)
    assert InputProblem(str(locked), f"Cannot read folder {locked}: permission denied") in items
    assert [i.path.name for i in items if isinstance(i, Source) and i.path] == ["ok.png"]


def test_many_files_are_fast_and_complete(tmp_path: Path) -> None:
    for i in range(2000):
        (tmp_path / f"{i:05d}.jpg").write_bytes(b"")
    found = sources(str(tmp_path))
    assert len(found) == 2000
    assert found[0].path is not None and found[0].path.name == "00000.jpg"


# --- parse_pasted_text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/a.png\r\n/b.png\r\n", ["/a.png", "/b.png"]),
        ("/a.png\r/b.png\n/c.png", ["/a.png", "/b.png", "/c.png"]),
        ("\n\n  /a.png  \n\n\t\n", ["/a.png"]),
        ("'/a b.png'", ["/a b.png"]),
        ('"/a b.png"', ["/a b.png"]),
        ("/a\\ b.png", ["/a b.png"]),
        ("/photos/My\\ Cat\\ \\(1\\).jpg", ["/photos/My Cat (1).jpg"]),
        ("'/a b.png' '/c.png' ", ["/a b.png", "/c.png"]),
        ("/a\\ b.png /c.png", ["/a b.png", "/c.png"]),
        ("/My Photos/cat.png", ["/My Photos/cat.png"]),
        ("/photos/it's here.png", ["/photos/it's here.png"]),
        ('"/photos/it\'s here.png"', ["/photos/it's here.png"]),
        ("file:///tmp/a%20b.png", ["file:///tmp/a%20b.png"]),
        (
            "'file:///tmp/a%20b.png' 'file:///tmp/c.png'",
            ["file:///tmp/a%20b.png", "file:///tmp/c.png"],
        ),
        ("https://x.org/a.png https://x.org/b.png", ["https://x.org/a.png", "https://x.org/b.png"]),
        ("C:\\Users\\me\\a.png", ["C:\\Users\\me\\a.png"]),
        ('"C:\\Users\\me\\My Pictures\\a.png"', ["C:\\Users\\me\\My Pictures\\a.png"]),
        ("", []),
    ],
)
def test_parse_pasted_text(text: str, expected: list[str]) -> None:
    assert parse_pasted_text(text) == expected


def test_existing_path_with_quote_characters_is_kept_whole(tmp_path: Path) -> None:
    odd = touch(tmp_path / "it's a 'test'.png")
    assert parse_pasted_text(f"{odd}\n") == [str(odd)]


_SAFE_CHARS = st.sampled_from("abcxyzABC019_-./ ")
_PATH = (
    st.text(_SAFE_CHARS, min_size=1, max_size=30)
    .map(lambda p: "/" + p)
    .filter(lambda p: p == p.strip())
)


@given(
    paths_in=st.lists(_PATH, min_size=1, max_size=8),
    newlines=st.lists(st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\r\n\r\n"]), min_size=8),
    quoting=st.lists(st.sampled_from(["none", "single", "double", "shlex"]), min_size=8),
    padding=st.sampled_from(["", " ", "\t", "  "]),
)
def test_parse_pasted_text_round_trips(
    paths_in: list[str], newlines: list[str], quoting: list[str], padding: str
) -> None:
    def quote(path: str, how: str) -> str:
        if how == "single":
            return f"'{path}'"
        if how == "double":
            return f'"{path}"'
        if how == "shlex":
            return shlex.quote(path)
        return path

    text = "".join(
        padding + quote(p, quoting[i]) + padding + newlines[i] for i, p in enumerate(paths_in)
    )
    assert parse_pasted_text(text) == paths_in


@given(st.lists(_PATH, min_size=1, max_size=6))
def test_a_terminal_drop_line_splits_back(paths_in: list[str]) -> None:
    line = " ".join(shlex.quote(p) if " " in p else f"'{p}'" for p in paths_in)
    assert parse_pasted_text(line) == paths_in


# --- stdin --------------------------------------------------------------------------------


def test_read_stdin_inputs(tmp_path: Path) -> None:
    trailing = touch(tmp_path / "ends in space.png ")
    stream = io.StringIO(f"/a.png\r\n\n  /b c.png  \n{trailing}\nhttps://x.org/y.png")
    assert read_stdin_inputs(stream) == [
        "/a.png",
        "/b c.png",
        str(trailing),
        "https://x.org/y.png",
    ]

"""Turn what the user typed, pasted or piped into `Source` objects, lazily.

A folder can hold tens of thousands of images, so sources are yielded while the
folders are still being read (the queue fills and work starts at once) with
`os.scandir`, which gets file types without a stat per entry. Inputs that lead
nowhere become `InputProblem`s rather than exceptions, so one bad argument is
reported and the rest still run.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

from tui_captioner.core.imaging import IMAGE_EXTENSIONS
from tui_captioner.core.jobs import Source

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # 2+ letters: "C:" is a drive
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
_GLOB_CHARS = re.compile(r"[*?\[]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class InputProblem:
    """An input that yields nothing, with the sentence to show for it."""

    given: str
    message: str


def _absolute(path: str | Path) -> Path:
    """Resolve links and `..` without raising on a symlink loop (Path.resolve does on
    3.11); the loop then fails later, in words, when the file is read."""
    return Path(os.path.realpath(path))


def iter_sources(inputs: Iterable[str]) -> Iterator[Source | InputProblem]:
    """Expand inputs into sources, each path or URL once, in a stable order.

    Explicit file paths are yielded whatever their extension (the user asked for
    them; reading will say if they are not images). Folders and globs only yield
    files with an image extension, skipping hidden files and folders.
    """
    seen: set[str] = set()
    visited_dirs: set[tuple[int, int]] = set()
    for given in inputs:
        if not given.strip():
            continue
        for item in _expand(given, visited_dirs):
            if isinstance(item, Source):
                if item.key in seen:
                    continue
                seen.add(item.key)
            yield item


def _expand(given: str, visited_dirs: set[tuple[int, int]]) -> Iterator[Source | InputProblem]:
    """One input -> its sources. `visited_dirs` is shared so folders are walked once."""
    match = _SCHEME.match(given)
    if match and not os.path.lexists(given):
        scheme = match.group(1).lower()
        if scheme in ("http", "https"):
            yield _url_source(given)
        elif scheme == "file":
            yield from _file_uri(given, visited_dirs)
        else:
            yield InputProblem(given, f"Only http and https URLs are supported: {given}")
        return
    yield from _local(
        given, os.path.expanduser(given), visited_dirs, allow_glob=True, spelled=given
    )


def _url_source(given: str) -> Source | InputProblem:
    """Lower-case scheme and host and drop the fragment, so spellings of one URL match."""
    try:
        parts = urlsplit(given.strip())
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        return InputProblem(given, f"Not a valid URL: {given}")
    netloc = parts.netloc if "@" in parts.netloc else parts.netloc.lower()
    url = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    return Source(given=given, url=url)


def _file_uri(given: str, visited_dirs: set[tuple[int, int]]) -> Iterator[Source | InputProblem]:
    parts = urlsplit(given.strip())
    if parts.netloc not in ("", "localhost"):
        yield InputProblem(given, f"file:// URIs on another computer are not supported: {given}")
        return
    local = url2pathname(parts.path)  # percent-decodes (and handles /C:/ on Windows)
    yield from _local(given, local, visited_dirs, allow_glob=False, spelled=local)


def _local(
    given: str, path: str, visited_dirs: set[tuple[int, int]], *, allow_glob: bool, spelled: str
) -> Iterator[Source | InputProblem]:
    """A local path: a folder to walk, a file to take, or a glob to expand.

    `spelled` is how files found in a folder are named in `Source.given`: the
    folder as typed, or the decoded path of a file:// URI.
    """
    if os.path.isdir(path):
        yield from _walk(spelled, path, visited_dirs)
    elif os.path.lexists(path):
        yield Source(given=given, path=_absolute(path))
    elif allow_glob and _GLOB_CHARS.search(path):
        yield from _glob(given, path, visited_dirs)
    else:
        yield InputProblem(given, f"No such file or folder: {given}")


def _glob(
    given: str, pattern: str, visited_dirs: set[tuple[int, int]]
) -> Iterator[Source | InputProblem]:
    """Shell-style patterns; like folders, they take only image files (and walk folders)."""
    found = False
    for match in sorted(glob.iglob(pattern, recursive=True), key=_name_order):
        if os.path.isdir(match):
            for item in _walk(match, match, visited_dirs):
                found = True  # a source, or a problem that names the folder
                yield item
        elif _is_image_name(match):
            found = True
            yield Source(given=match, path=_absolute(match))
    if not found:
        yield InputProblem(given, f"No images match {given}")


def _walk(
    given: str, folder: str, visited_dirs: set[tuple[int, int]]
) -> Iterator[Source | InputProblem]:
    """Depth-first, sorted, yielding as it goes; each real folder is read once.

    Tracking (st_dev, st_ino) of every folder entered lets symlinked folders be
    followed while a link back to an ancestor (a loop) is simply not entered again.
    Sources carry `given` spelled from the user's folder (for results), and a path
    under the resolved folder (so a file given separately compares equal).
    """
    root = _absolute(folder)
    if not _first_visit(str(root), visited_dirs):
        return
    # Each stack entry: (real folder, folder as the user spelled it, sorted entries).
    stack: list[tuple[Path, str, Iterator[os.DirEntry[str]]]] = []
    entries = _sorted_entries(root)
    if isinstance(entries, InputProblem):
        yield InputProblem(given, entries.message)
        return
    stack.append((root, given, iter(entries)))
    found = False
    while stack:
        real, spelled, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        if entry.name.startswith("."):
            continue
        shown = os.path.join(spelled, entry.name)
        try:
            is_dir = entry.is_dir()  # follows symlinks; a broken or looping link is False
            is_file = not is_dir and entry.is_file()
        except OSError:
            continue
        if is_dir:
            if not _first_visit(entry.path, visited_dirs):
                continue
            children = _sorted_entries(Path(entry.path))
            if isinstance(children, InputProblem):
                yield InputProblem(shown, children.message)
                continue
            stack.append((real / entry.name, shown, iter(children)))
        elif is_file and _is_image_name(entry.name):
            found = True
            yield Source(given=shown, path=real / entry.name)
    if not found:  # say so rather than add nothing without a word
        yield InputProblem(given, f"No images found in {given}")


def _first_visit(path: str, visited_dirs: set[tuple[int, int]]) -> bool:
    """Record a folder's identity; False when it was entered before (or cannot be)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    ident = (st.st_dev, st.st_ino)
    if ident in visited_dirs:
        return False
    visited_dirs.add(ident)
    return True


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]] | InputProblem:
    """One folder's entries by name; sorting one folder at a time keeps walking lazy."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except PermissionError:
        return InputProblem(str(folder), f"Cannot read folder {folder}: permission denied")
    except OSError as exc:
        return InputProblem(str(folder), f"Cannot read folder {folder}: {exc.strerror or exc}")
    entries.sort(key=lambda e: _name_order(e.name))
    return entries


def _name_order(name: str) -> tuple[str, str]:
    """Case-insensitive first (as file managers show it), then exact for a stable tie-break."""
    return (name.casefold(), name)


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


# --- pasted and piped text -------------------------------------------------------------


def parse_pasted_text(text: str) -> list[str]:
    """Split a paste (or a terminal's file drop) into inputs, one path or URL each.

    Lines are inputs. Within a line, quoting and backslash-escaping are undone the
    way a shell would, which is how terminals deliver dropped files
    (`'/a b.png' '/c.png'` or `/a\\ b.png /c.png`), but only when the line starts
    with a quote or holds an escaped space and is not itself an existing path, so a
    plain `/My Photos/it's.png` stays one input. file:// URIs are kept as given.
    """
    inputs: list[str] = []
    for line in _LINE_BREAK.split(text):
        inputs.extend(_split_line(_strip(line)))
    return inputs


def _strip(line: str) -> str:
    """Trim padding, but keep a final space a backslash escapes (`draft\\ `)."""
    stripped = line.strip()
    if stripped.endswith("\\") and line != line.rstrip():
        return stripped + " "
    return stripped


def _split_line(line: str) -> list[str]:
    if not line:
        return []
    if _WINDOWS_PATH.match(_unquote(line)):
        return [_unquote(line)]  # backslashes are separators here, not escapes
    if line[0] in "'\"" or "\\" in line:
        if os.path.lexists(os.path.expanduser(line)):
            return [line]
        try:
            tokens = shlex.split(line)
        except ValueError:  # unbalanced quote: an apostrophe in a name
            return [_unquote(line).replace("\\ ", " ")]
        return [t for t in tokens if t.strip()]
    if " " in line and all(_URL_LIKE.match(part) for part in line.split()):
        return line.split()  # several URLs on one line (URLs never hold raw spaces)
    return [line]


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def read_stdin_inputs(stream: TextIO) -> list[str]:
    """Inputs piped to `-`: one per line, no quoting rules (that is what `find` prints).

    Surrounding whitespace is trimmed, unless the untrimmed line names an existing
    file (a name that really ends in a space).
    """
    inputs: list[str] = []
    for raw in stream:
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        if not stripped:
            continue
        if stripped != line and os.path.lexists(line) and not os.path.lexists(stripped):
            inputs.append(line)
        else:
            inputs.append(stripped)
    return inputs

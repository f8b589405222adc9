"""Invariants under generated inputs (hypothesis).

* `parse_pasted_text`: lines are independent, line-break style and padding do not
  matter, nothing blank comes out, terminal drops (quoted or backslash-escaped) and
  file:// URIs of arbitrary file names come back exactly, several URLs on a line split.
* The scheduler under random fault sequences, cancels and pauses: every job ends in
  exactly one final state, no more requests in flight than allowed, a cancelled job
  sends nothing more, a done job carries the caption the server sent (answered once).

Async scenarios run with `asyncio.run` inside a plain `@given` test: each example gets
its own loop, its own FakeGemini and its own temporary folder.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.servers.gemini import FakeGemini, Fault
from tui_captioner.core.jobs import Job, JobFinished, JobState, Source
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings
from tui_captioner.core.sources import InputProblem, iter_sources, parse_pasted_text

# The autouse env_isolation fixture is function-scoped; it only sets environment
# variables, which is harmless to share between the examples of one test.
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- parse_pasted_text ------------------------------------------------------------------

# Anything that can sit on one line of a paste (no line breaks, no surrogates).
_LINE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")
_LINE = st.text(_LINE_CHARS, max_size=40)
_BREAKS = st.sampled_from(["\n", "\r\n", "\r"])
# Characters a file name can hold (POSIX: anything but "/" and NUL); no line breaks,
# since a paste cannot carry them, and no surrogates.
_NAME_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x00\r\n\x85\u2028\u2029"
)


@PROPERTY
@given(lines=st.lists(_LINE, max_size=8), breaks=st.lists(_BREAKS, min_size=8, max_size=8))
def test_each_line_is_parsed_on_its_own(lines: list[str], breaks: list[str]) -> None:
    text = "".join(line + breaks[i] for i, line in enumerate(lines))
    expected = [item for line in lines for item in parse_pasted_text(line)]
    assert parse_pasted_text(text) == expected
    # the line-break style (LF, CRLF, CR, or a mix) never matters
    assert parse_pasted_text("\n".join(lines)) == expected
    assert parse_pasted_text("\r\n".join(lines)) == expected


@PROPERTY
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_nothing_blank_and_no_line_break_comes_out(text: str) -> None:
    items = parse_pasted_text(text)
    for item in items:
        assert item.strip(), f"blank input {item!r} from {text!r}"
        assert "\n" not in item and "\r" not in item
    assert parse_pasted_text(text.replace("\r\n", "\n")) == items


# A line ending in a backslash is the one place trailing padding means something: the
# backslash escapes it (a dropped name that ends in a space; see the test below).
_UNESCAPED_LINE = _LINE.filter(lambda line: not line.rstrip().endswith("\\"))


@PROPERTY
@given(
    lines=st.lists(_UNESCAPED_LINE, max_size=6),
    blank=st.lists(st.sampled_from(["", " ", "\t", "  \t "]), min_size=1, max_size=4),
    pad=st.sampled_from(["", " ", "\t", " \t"]),
)
def test_blank_lines_and_padding_change_nothing(
    lines: list[str], blank: list[str], pad: str
) -> None:
    plain = parse_pasted_text("\n".join(lines))
    noisy = "\n".join(blank) + "\n" + "\n".join(f"{pad}{line}{pad}" for line in lines)
    noisy += "\n" + "\n".join(blank)
    assert parse_pasted_text(noisy) == plain


def _abs_path(name_chars=_NAME_CHARS, max_parts: int = 3):
    part = st.text(name_chars, min_size=1, max_size=12).filter(lambda p: p not in (".", ".."))
    return st.lists(part, min_size=1, max_size=max_parts).map(lambda ps: "/" + "/".join(ps))


def _vte_quote(path: str) -> str:
    """How GNOME Terminal & co. drop a file: always in single quotes."""
    return "'" + path.replace("'", "'\\''") + "'"


@PROPERTY
@given(paths=st.lists(_abs_path(), min_size=1, max_size=5), trailing=st.sampled_from(["", " "]))
def test_a_quoted_drop_of_any_names_splits_back(paths: list[str], trailing: str) -> None:
    line = " ".join(_vte_quote(p) for p in paths) + trailing
    assert parse_pasted_text(line) == paths
    assert parse_pasted_text(line + "\r\n" + line) == paths + paths


_ESCAPED = re.compile(r"([ \t'\"\\()&;$`!*?\[\]{}<>|#~=%^,])")


@PROPERTY
@given(
    first=_abs_path().map(lambda p: p + " copy.png"),  # at least one escaped space
    rest=st.lists(_abs_path(), max_size=4),
)
def test_a_backslash_escaped_drop_splits_back(first: str, rest: list[str]) -> None:
    """How macOS Terminal and iTerm2 drop files: special characters backslash-escaped.

    (A last name ending in whitespace is left to the example test below.)
    """
    paths = [first, *rest]
    assume(paths[-1] == paths[-1].rstrip())
    line = " ".join(_ESCAPED.sub(r"\\\1", p) for p in paths)
    assert parse_pasted_text(line) == paths


def test_a_backslash_escaped_name_ending_in_a_space_keeps_it() -> None:
    """Trimming a line must not eat a space its backslash escapes (a name ending in a
    space, as a terminal delivers it on drop)."""
    assert parse_pasted_text("/a\\ b.png /photos/draft\\ ") == ["/a b.png", "/photos/draft "]


_HOST = st.from_regex(r"[a-z][a-z0-9-]{0,10}\.(org|com|net)", fullmatch=True)
_URL_PATH = st.from_regex(r"(/[A-Za-z0-9._~%-]{0,12}){0,3}(\?[a-z]=[0-9]{1,3})?", fullmatch=True)


@PROPERTY
@given(
    urls=st.lists(
        st.tuples(st.sampled_from(["http", "https"]), _HOST, _URL_PATH).map(
            lambda t: f"{t[0]}://{t[1]}{t[2]}"
        ),
        min_size=1,
        max_size=5,
    ),
    sep=st.sampled_from([" ", "  ", " \t "]),
)
def test_urls_on_one_line_or_many(urls: list[str], sep: str) -> None:
    assert parse_pasted_text(sep.join(urls)) == urls
    assert parse_pasted_text("\r\n".join(urls)) == urls
    assert parse_pasted_text("\n\n".join(f"'{u}'" for u in urls)) == urls


_FILE_NAME = (
    st.text(_NAME_CHARS, min_size=1, max_size=20)
    .map(lambda n: n + ".png")
    .filter(lambda n: n == n.strip() and len(n.encode()) < 200)
)


@PROPERTY
@given(names=st.lists(_FILE_NAME, min_size=1, max_size=4, unique=True))
def test_file_uris_and_plain_paths_of_any_name_lead_to_the_file(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp).resolve()
        files = []
        for name in names:
            path = folder / name
            path.write_bytes(b"x")
            files.append(path)
        uris = [p.as_uri() for p in files]
        assert parse_pasted_text("\n".join(uris)) == uris, "file:// URIs are kept as given"
        assert parse_pasted_text(" ".join(f"'{u}'" for u in uris)) == uris
        for path, uri in zip(files, uris, strict=True):
            (source,) = list(iter_sources(parse_pasted_text(uri)))
            assert isinstance(source, Source) and source.path == path, (uri, source)
            localhost = uri.replace("file://", "file://localhost", 1)
            (source,) = list(iter_sources(parse_pasted_text(localhost)))
            assert isinstance(source, Source) and source.path == path
            # the plain path of an existing file, pasted alone, is that file
            assert parse_pasted_text(str(path) + "\r\n") == [str(path)]
            (source,) = list(iter_sources(parse_pasted_text(str(path))))
            assert not isinstance(source, InputProblem) and source.path == path


# --- the scheduler under random faults ------------------------------------------------

FAULTS = {
    "ok": Fault.ok(),
    "rate_limit": Fault.rate_limit("0.01s"),
    "rate_limit_no_delay": Fault.rate_limit(None),
    "overloaded": Fault.overloaded(),
    "internal": Fault.internal(),
    "cut": Fault.cut(after_chunks=1),
    "safety": Fault.safety_block(after_chunks=1),
    "empty": Fault.empty_candidates(),
    "hang": Fault.hang(),
}
TIMEOUT_S = 0.3  # what a hung request costs


@dataclass(frozen=True)
class Scenario:
    images: int
    concurrency: int
    retries: int
    faults: tuple[str, ...]
    actions: tuple[tuple[str, int, int], ...]  # (cancel|pause, job index, delay in ms)


@st.composite
def scenarios(draw) -> Scenario:
    images = draw(st.integers(1, 8))
    return Scenario(
        images=images,
        concurrency=draw(st.integers(1, 4)),
        retries=draw(st.integers(1, 4)),
        faults=tuple(draw(st.lists(st.sampled_from(sorted(FAULTS)), max_size=12))),
        actions=tuple(
            draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(["cancel", "pause"]),
                        st.integers(0, images - 1),
                        st.integers(0, 40),
                    ),
                    max_size=3,
                )
            )
        ),
    )


def _size(index: int) -> tuple[int, int]:
    return (40 + index, 30 + index)


@dataclass
class Played:
    jobs: list[Job]
    finishes: Counter[int]
    cancelled_at: dict[int, int]  # job id -> attempts when cancel() was called on it
    requests: list  # RecordedRequest
    server_max_in_flight: int
    limiter_max_in_flight: int
    captions: dict[tuple[int, int], list[str]]  # size -> captions of answered requests
    retries: int
    idle: bool


async def play(scenario: Scenario, folder: Path) -> Played:
    sizes = {}
    for i in range(scenario.images):
        path = folder / f"img{i}.jpg"
        Image.new("RGB", _size(i), (i * 30, 80, 140)).save(path, quality=80)
        sizes[path] = _size(i)
    async with FakeGemini(chunks=3) as server:
        server.script(*(FAULTS[name] for name in scenario.faults))
        settings_ = Settings(
            base_url=server.url,
            api_key="test-key",
            concurrency=scenario.concurrency,
            retries=scenario.retries,
            timeout=TIMEOUT_S,
            cache=False,  # examples reuse the same images: every one must really be sent
        )
        async with Pipeline(settings_, backoff_base=0.001, backoff_max=0.05) as pipeline:
            finishes: Counter[int] = Counter()
            pipeline.subscribe(
                lambda e: finishes.update([e.job.id]) if isinstance(e, JobFinished) else None
            )
            jobs = pipeline.add_inputs([str(folder)])
            cancelled_at: dict[int, int] = {}

            async def act() -> None:
                for kind, index, delay_ms in scenario.actions:
                    await asyncio.sleep(delay_ms / 1000)
                    job = jobs[index]
                    if kind == "cancel":
                        if not job.state.is_final and job.id not in cancelled_at:
                            cancelled_at[job.id] = job.attempts
                        pipeline.cancel(job.id)
                    else:
                        pipeline.pause()
                        await asyncio.sleep(0.01)
                        pipeline.resume()

            idle = True
            try:
                await asyncio.wait_for(asyncio.gather(act(), pipeline.wait_idle()), 6)
            except TimeoutError:
                idle = False
            played = Played(
                jobs=jobs,
                finishes=Counter(finishes),
                cancelled_at=dict(cancelled_at),
                requests=list(server.requests),
                server_max_in_flight=server.max_in_flight,
                limiter_max_in_flight=pipeline.limiter.max_in_flight,
                captions={},
                retries=scenario.retries,
                idle=idle,
            )
            for request in server.answered:
                played.captions.setdefault((request.width, request.height), []).append(
                    server.caption_for(request).strip()
                )
            for job in jobs:
                job.width, job.height = sizes[job.source.path]  # also for never-prepared jobs
        return played


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_scheduler_invariants_under_random_faults(scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        played = asyncio.run(play(scenario, Path(tmp)))

    states = {j.source.name: (j.state.value, j.attempts, j.error) for j in played.jobs}
    assert played.idle, f"the run never went idle: {states}"
    assert len(played.jobs) == scenario.images
    # every job ends in exactly one final state
    assert all(j.state.is_final for j in played.jobs), states
    assert played.finishes == Counter({j.id: 1 for j in played.jobs}), "one JobFinished each"
    # never more in flight than allowed
    assert played.limiter_max_in_flight <= scenario.concurrency
    assert played.server_max_in_flight <= scenario.concurrency

    for job in played.jobs:
        size = (job.width, job.height)
        sent = [r for r in played.requests if (r.width, r.height) == size]
        assert job.attempts <= scenario.retries, states
        assert len(sent) <= job.attempts, "a request nobody counted as an attempt"
        if job.id in played.cancelled_at:
            # cancelled while running: ends cancelled, and starts no attempt after that
            assert job.state is JobState.CANCELLED, states
            assert job.error == "Cancelled by the user"
            assert job.attempts == played.cancelled_at[job.id]
        else:
            assert job.state is not JobState.CANCELLED
            assert len(sent) == job.attempts, "every attempt reached the server once"
        if job.state is JobState.DONE:
            answered = played.captions.get(size, [])
            assert answered == [job.caption], "done = answered once, with that caption"
            assert job.error is None
        else:
            assert job.error
            assert size not in played.captions or job.state is JobState.CANCELLED


def test_play_runs_a_plain_scenario() -> None:
    """The harness itself: no faults, no actions, everything done."""
    scenario = Scenario(images=3, concurrency=2, retries=1, faults=(), actions=())
    with tempfile.TemporaryDirectory() as tmp:
        played = asyncio.run(play(scenario, Path(tmp)))
    assert played.idle
    assert [j.state for j in played.jobs] == [JobState.DONE] * 3
    assert len(played.requests) == 3

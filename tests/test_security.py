"""Security: the key stays secret, files land only where they belong, only http(s) is fetched.

* The API key never appears in results (JSONL, CSV), sidecars, the results cache,
  stdout or stderr: not with a key Gemini refuses, not with one it takes, not in a
  connection error, not in any message a fault produces.
* Sidecars are written beside their own image only; a URL job writes none; `..` in a
  path cannot put one elsewhere. Names made from URLs are safe file names.
* Only http and https are fetched: other schemes, and redirects to them, are refused
  without a single request leaving.
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.cli_support import child_env, read_jsonl, run_cli
from tests.servers.gemini import FakeGemini, Fault
from tests.servers.image_host import ImageHost
from tui_captioner.core import fetch
from tui_captioner.core.errors import InputError
from tui_captioner.core.jobs import Job, JobState, Source
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings
from tui_captioner.core.store import sidecar_path

SECRET = "AIzaSyTOPSECRET-7f3a9c2e1d4b5a6f-DoNotPrint"


def photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"p{i}.jpg"
        Image.new("RGB", (60 + i, 40), (i * 50, 80, 120)).save(path)
        paths.append(path)
    return paths


def files_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_secret_nowhere(secret: str, *texts: str, roots: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert secret not in text
        assert secret[8:24] not in text, "not even a part of it"
    for root in roots:
        for path, data in files_under(root).items():
            assert secret.encode() not in data, f"the key was written to {path}"
            assert secret[8:24].encode() not in data, f"part of the key is in {path}"


# --- the key ----------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
async def test_a_refused_key_is_never_printed_or_written(gemini, tmp_path, variable) -> None:
    folder = tmp_path / "photos"
    photos(folder, 4)
    env = child_env(gemini, key=None, **{variable: SECRET})
    out, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    result = await run_cli(
        str(folder), "--jsonl", str(out), "--csv", str(table), "--sidecar", "-j", "2", env=env
    )
    assert result.code == 1
    assert "Gemini rejected the API key" in result.stderr
    assert gemini.requests and gemini.requests[0].api_key == SECRET, "the key was really used"
    assert {r["status"] for r in read_jsonl(out)} == {"cancelled"}
    assert_secret_nowhere(SECRET, result.stdout, result.stderr, roots=(tmp_path,))


async def test_a_working_key_is_never_printed_or_written(tmp_path) -> None:
    folder = tmp_path / "photos"
    photos(folder, 5)
    out, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    async with FakeGemini(api_keys=[SECRET], chunks=3) as server:
        server.script(
            Fault.cut(after_chunks=1),
            Fault.overloaded(),
            Fault.safety_block(),
            Fault.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
        )
        result = await run_cli(
            str(folder),
            "--jsonl",
            str(out),
            "--csv",
            str(table),
            "--sidecar",
            "-j",
            "1",
            "--retries",
            "3",
            env=child_env(server, key=SECRET),
        )
        assert {r.api_key for r in server.requests} == {SECRET}
    records = read_jsonl(out)
    assert result.code == 1
    assert sum(r["status"] == "done" for r in records) == 3
    assert sum(r["status"] == "failed" for r in records) == 2
    assert len(list(folder.glob("*.txt"))) == 3, "sidecars were written"
    cache = Path(os.environ["TUI_CAPTIONER_CACHE_DIR"])
    assert any(cache.rglob("*")), "the results cache was written"
    assert_secret_nowhere(SECRET, result.stdout, result.stderr, roots=(tmp_path,))


async def test_connection_errors_do_not_show_the_key(tmp_path) -> None:
    photos(tmp_path / "photos", 2)
    server = FakeGemini(api_keys=[SECRET])
    await server.start()
    await server.stop()  # nothing listens on its port now
    result = await run_cli(
        str(tmp_path / "photos"), "--retries", "1", env=child_env(server, key=SECRET)
    )
    assert result.code == 1
    assert "The connection to Gemini failed" in result.stderr
    assert_secret_nowhere(SECRET, result.stdout, result.stderr, roots=(tmp_path,))


async def test_the_key_stays_out_of_reprs_and_results(gemini, tmp_path) -> None:
    settings = Settings(base_url=gemini.url, api_key=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    (path,) = photos(tmp_path, 1)
    gemini.api_keys = {SECRET}
    async with Pipeline(settings, backoff_base=0.001) as pipeline:
        (job,) = pipeline.add_inputs([str(path)])
        await pipeline.wait_idle()
    assert job.state is JobState.DONE
    assert SECRET not in repr(job) and SECRET not in str(job.result())


# --- sidecars go beside their own image, nowhere else ---------------------------------


async def test_sidecars_only_beside_local_images_never_for_urls(
    gemini, image_host: ImageHost, tmp_path
) -> None:
    folder = tmp_path / "photos"
    (a, b) = photos(folder, 2)
    (deep,) = photos(folder / "sub", 1)
    work = tmp_path / "work"  # the current folder of the run
    work.mkdir()
    before = set(files_under(tmp_path))
    url = image_host.url("/img/chelsea.png")
    result = await run_cli(
        str(folder / "sub" / ".." / a.name),  # a spelling with ..
        os.path.relpath(b, work),  # a relative spelling that climbs out of the cwd
        str(folder / "sub"),
        url,
        "--sidecar",
        "--jsonl",
        str(tmp_path / "out.jsonl"),
        env=child_env(gemini),
        cwd=work,
    )
    assert result.code == 0, result.stderr
    created = set(files_under(tmp_path)) - before
    env_root = Path(os.environ["TUI_CAPTIONER_CACHE_DIR"]).parent
    created = {p for p in created if env_root not in p.parents}
    assert created == {
        tmp_path / "out.jsonl",
        a.with_suffix(".txt"),
        b.with_suffix(".txt"),
        deep.with_suffix(".txt"),
    }
    assert not any(work.iterdir()), "nothing is written to the current folder"
    assert not list(tmp_path.rglob("chelsea*.txt")), "a URL has no sidecar"


def test_sidecar_path_stays_beside_the_image() -> None:
    for name in ["a.png", "..png", "...png", "a.b.c.jpg", ".hidden.jpg", "noext"]:
        job = Job(
            source=Source(given=name, path=Path("/data/photos") / name), model="m", prompt="p"
        )
        path = sidecar_path(job)
        assert path is not None and path.parent == Path("/data/photos"), (name, path)
        assert path.suffix == ".txt"
    url_job = Job(source=Source(given="u", url="http://x/..%2F..%2Fa.png"), model="m", prompt="p")
    assert sidecar_path(url_job) is None


_SEGMENT_CHARS = st.characters(blacklist_categories=("Cs",))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    segments=st.lists(st.text(_SEGMENT_CHARS, max_size=30), min_size=0, max_size=4),
    host=st.sampled_from(["example.com", "[::1]", "xn--bcher-kva.example", "CON", "a..b"]),
    query=st.sampled_from(["", "?x=1/../../etc", "#frag/../x"]),
)
def test_names_from_urls_are_safe_file_names(segments: list[str], host: str, query: str) -> None:
    url = f"https://{host}/" + "/".join(quote(s, safe="") for s in segments) + query
    name = fetch.display_name_for_url(url)
    assert name and len(name) <= 100
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not set(name) & set(':*?"<>|')
    assert not name.startswith(".") and name not in (".", "..")
    assert all(unicodedata.category(c) != "Cc" for c in name), f"control character in {name!r}"
    assert name.split(".", 1)[0].lower() not in {"con", "prn", "aux", "nul", "com1", "lpt1"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp).resolve()
        assert (folder / name).resolve().parent == folder
        assert os.path.basename(name) == name


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://x/..%2F..%2Fetc%2Fpasswd", "etc_passwd"),
        ("http://x/%2E%2E", "x"),
        ("http://x/a%5C..%5Cb.png", "a_.._b.png"),
        ("http://x/con.png", "_con.png"),
        ("http://x/.htaccess", "htaccess"),
        ("http://x/", "x"),
    ],
)
def test_names_from_urls_examples(url: str, expected: str) -> None:
    assert fetch.display_name_for_url(url) == expected


# --- only http and https are fetched ----------------------------------------------------

NON_HTTP = [
    "file:///etc/passwd",
    "ftp://example.com/a.png",
    "data:image/png;base64,iVBORw0KGgo=",
    "javascript:alert(1)",
    "gopher://example.com/1",
    "ws://127.0.0.1:1/a.png",
    "HTTPX://example.com/a.png",
]


class NoNetwork:
    """A stand-in session: any attempt to use it fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the network was used ({name}) for a refused URL")


@pytest.mark.parametrize("url", NON_HTTP)
async def test_fetch_refuses_other_schemes_without_touching_the_network(url: str) -> None:
    with pytest.raises(InputError) as caught:
        await fetch.fetch_image(NoNetwork(), url)  # type: ignore[arg-type]
    assert "Only http and https URLs can be fetched" in str(caught.value)


async def test_redirects_to_other_schemes_are_refused(tmp_path) -> None:
    targets = {
        "/to-file": "file:///etc/passwd",
        "/to-ftp": "ftp://example.com/a.png",
        "/to-data": "data:image/png;base64,iVBORw0KGgo=",
    }

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(targets[request.path])

    app = web.Application()
    for path in targets:
        app.router.add_get(path, redirect)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            for path, target in targets.items():
                with pytest.raises(InputError) as caught:
                    await fetch.fetch_image(session, f"http://{host}:{port}{path}")
                assert "cannot be fetched" in str(caught.value), (target, str(caught.value))
    finally:
        await runner.cleanup()


async def test_pipeline_sends_no_request_for_other_schemes(gemini, tmp_path) -> None:
    started: list[str] = []

    async def on_start(_session, _ctx, params) -> None:
        started.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    inputs = [u for u in NON_HTTP if not u.startswith("file:")]
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        settings_ = Settings(base_url=gemini.url, api_key="test-key", cache=False)
        async with Pipeline(settings_, session=session, backoff_base=0.001) as pipeline:
            jobs = pipeline.add_inputs(inputs)
            await pipeline.wait_idle()
    assert len(jobs) == len(inputs)
    for job in jobs:
        assert job.state is JobState.FAILED
        assert "Only http and https" in job.error, job.error
    assert started == [], "nothing was fetched"
    assert gemini.requests == []

"""Bad inputs: each one a failed job with a clear reason (or handled), and the run goes on.

Most cases run in ONE real `tui-captioner run` over a folder of awkward files plus
misbehaving URLs, against a FakeGemini that fully decodes every image it is sent
(`verify_images=True`). The good-but-unusual images must arrive as a type the service
takes, with the right pixels (16-bit not clipped to white, CMYK turned into RGB, alpha
kept as PNG, the first frame of a GIF); the bad ones must fail in words; stderr must
hold no traceback. The few cases that need the Pipeline API (a file deleted while
queued, an unreadable file) run in-process.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from tests.cli_support import child_env, read_jsonl, run_cli
from tests.servers.gemini import FakeGemini, RecordedRequest
from tests.servers.image_host import ImageHost
from tests.test_faults import Ledger, make_images, settle
from tui_captioner.core.jobs import JobState
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings

pillow_heif.register_heif_opener()

# --- making awkward files --------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def bomb_png(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (400 MP for 20000) that is ~50 KB on disk.

    Written row by row through zlib, so making it never holds the pixels in memory.
    """
    assert side * side > 2 * Image.MAX_IMAGE_PIXELS
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def save(image: Image.Image, path: Path, **params) -> Path:
    image.save(path, **params)
    return path


def noisy_jpeg(size: tuple[int, int]) -> bytes:
    """A JPEG with real detail (so half of it is really half of the picture)."""
    image = Image.effect_noise(size, 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def sixteen_bit_png(path: Path, size: tuple[int, int]) -> Path:
    """A 16-bit greyscale gradient (mode I;16): a plain convert('RGB') makes it all white."""
    gradient = Image.linear_gradient("L").resize(size).convert("I").point(lambda v: v * 257)
    return save(gradient.convert("I;16"), path)


def palette_with_transparency(path: Path, size: tuple[int, int]) -> Path:
    image = Image.new("P", size, 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    for x in range(size[0] // 2):  # the left half is fully transparent
        for y in range(size[1]):
            image.putpixel((x, y), 0)
    return save(image, path, transparency=0)


def animated_gif(path: Path, size: tuple[int, int]) -> Path:
    red = Image.new("RGB", size, (255, 0, 0))
    blue = Image.new("RGB", size, (0, 0, 255))
    return save(red, path, save_all=True, append_images=[blue], duration=100, loop=0)


# --- what the server was sent ----------------------------------------------------------


def sent_image(request: RecordedRequest) -> Image.Image:
    """Decode the inline image of a recorded request (keep_bodies must be on)."""
    assert request.raw is not None
    for content in request.raw["contents"]:
        for part in content.get("parts", []):
            inline = part.get("inline_data") or part.get("inlineData")
            if inline:
                data = inline["data"].translate(str.maketrans("-_", "+/"))
                image = Image.open(io.BytesIO(base64.b64decode(data + "=" * (-len(data) % 4))))
                image.load()
                return image
    raise AssertionError("no inline image in the request")


def request_of_size(server: FakeGemini, size: tuple[int, int]) -> RecordedRequest:
    matching = [r for r in server.requests if (r.width, r.height) == size]
    assert len(matching) == 1, f"{len(matching)} requests for an image of {size}"
    return matching[0]


# --- the one big run -------------------------------------------------------------------

SIZES = {
    "tiny.png": (1, 1),
    "deep16.png": (70, 50),
    "cmyk.jpg": (64, 40),
    "palette alpha.png": (50, 36),
    "anim.gif": (44, 33),
    "photo.heic": (60, 46),
    "my photo ü.jpg": (58, 41),
    "写真 2.png": (62, 47),
}


def build_folder(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    sub = folder / "sub"
    sub.mkdir()
    made = {
        "empty.png": folder / "empty.png",
        "truncated.jpg": folder / "truncated.jpg",
        "text.png": folder / "text.png",
        "bomb.png": folder / "bomb.png",
        "tiny.png": save(Image.new("RGB", (1, 1), (10, 20, 30)), folder / "tiny.png"),
        "deep16.png": sixteen_bit_png(folder / "deep16.png", SIZES["deep16.png"]),
        "cmyk.jpg": save(
            Image.new("CMYK", SIZES["cmyk.jpg"], (0, 255, 255, 0)), folder / "cmyk.jpg"
        ),
        "palette alpha.png": palette_with_transparency(
            folder / "palette alpha.png", SIZES["palette alpha.png"]
        ),
        "anim.gif": animated_gif(folder / "anim.gif", SIZES["anim.gif"]),
        "photo.heic": save(
            Image.new("RGB", SIZES["photo.heic"], (20, 160, 40)), folder / "photo.heic"
        ),
        "my photo ü.jpg": save(
            Image.new("RGB", SIZES["my photo ü.jpg"], (90, 90, 90)), folder / "my photo ü.jpg"
        ),
        "写真 2.png": save(Image.new("RGB", SIZES["写真 2.png"], (1, 2, 3)), sub / "写真 2.png"),
    }
    made["empty.png"].write_bytes(b"")
    whole = noisy_jpeg((200, 150))
    made["truncated.jpg"].write_bytes(whole[: len(whole) // 2])
    made["text.png"].write_text("This is a shopping list, not a picture.\n" * 5)
    made["bomb.png"].write_bytes(bomb_png())
    # links that lead nowhere: two files pointing at each other, a folder back to its parent
    (folder / "loop-a.png").symlink_to("loop-b.png")
    (folder / "loop-b.png").symlink_to("loop-a.png")
    (sub / "up").symlink_to("..")
    return made


async def test_one_run_over_every_kind_of_bad_input(tmp_path, image_host: ImageHost) -> None:
    folder = tmp_path / "inbox"
    files = build_folder(folder)
    config_dir = Path(os.environ["TUI_CAPTIONER_CONFIG_DIR"])
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.toml").write_text("max-download-mb = 0.25\nretries = 2\n")
    host = image_host.base_url
    urls = {
        "404": f"{host}/missing",
        "html": f"{host}/page",
        "endless": f"{host}/endless?chunk=16384",
        "redirect-loop": f"{host}/loop",
        "trickle": f"{host}/slow?delay=0.002&chunk=2048&name=horse.png",
        "ftp": "ftp://example.com/cat.png",
        "data": "data:image/png;base64,iVBORw0KGgo=",
        "javascript": "javascript:alert(1)",
    }
    out = tmp_path / "out.jsonl"
    async with FakeGemini(verify_images=True) as server:
        result = await run_cli(
            str(folder), *urls.values(), "--jsonl", str(out), "-j", "4", env=child_env(server)
        )
        requests = list(server.requests)

    assert result.code == 1, result.stderr
    records = read_jsonl(out)
    by_source = {r["source"]: r for r in records}
    assert len(by_source) == len(records), "one line per input, none twice"
    expected_files = {str(folder / name) for name in files if name != "写真 2.png"}
    expected_files.add(str(folder / "sub" / "写真 2.png"))
    assert set(by_source) == expected_files | set(urls.values())

    def outcome(source: str) -> tuple[str, str]:
        record = by_source[source]
        return record["status"], record["error"] or ""

    def failed_saying(source: str, *words: str) -> None:
        status, error = outcome(source)
        assert status == "failed", (source, status, error)
        for word in words:
            assert word in error, (source, error)

    # files that cannot be captioned, each in words
    failed_saying(str(files["empty.png"]), "empty.png is empty")
    failed_saying(str(files["truncated.jpg"]), "truncated.jpg", "truncated")
    failed_saying(str(files["text.png"]), "text.png is not an image file", "contains text")
    failed_saying(str(files["bomb.png"]), "bomb.png is too large to decode safely", "400")
    # URLs that do not lead to an image
    failed_saying(urls["404"], "404")
    failed_saying(urls["html"], "web page")
    failed_saying(urls["endless"], "larger than 256 KB")
    failed_saying(urls["redirect-loop"], "redirected too many times")
    for scheme in ("ftp", "data", "javascript"):
        failed_saying(urls[scheme], "Only http and https")

    # the unusual but good ones are done, and were sent in a form the service takes
    done = {
        str(files[name]) if name != "写真 2.png" else str(folder / "sub" / name) for name in SIZES
    } | {urls["trickle"]}
    for source in done:
        assert outcome(source) == ("done", ""), (source, by_source[source])
        assert by_source[source]["caption"]
    assert {r["status"] for r in records} == {"done", "failed"}
    assert len(requests) == len(done), "only the good images reached the model"
    assert all(r.outcome == "ok" for r in requests)
    for request in requests:
        assert request.mime_type in {"image/jpeg", "image/png", "image/webp", "image/heic"}

    for name, size in SIZES.items():
        record = next(r for r in records if r["source"].endswith(name))
        assert (record["width"], record["height"]) == size, name
    tiny = request_of_size(server, (1, 1))
    assert tiny.image_bytes > 0

    deep = sent_image(request_of_size(server, SIZES["deep16.png"]))
    low, high = deep.convert("L").getextrema()
    assert high - low > 150, f"16-bit gradient flattened to {low}..{high}"

    cmyk_request = request_of_size(server, SIZES["cmyk.jpg"])
    cmyk = sent_image(cmyk_request)
    assert cmyk_request.mime_type == "image/jpeg" and cmyk.mode == "RGB"
    r, g, b = cmyk.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60, "CMYK (0,255,255,0) is red"

    palette_request = request_of_size(server, SIZES["palette alpha.png"])
    assert palette_request.mime_type == "image/png", "transparency needs PNG"
    alpha = sent_image(palette_request).convert("RGBA").getchannel("A").getextrema()
    assert alpha == (0, 255), "the transparent half stays transparent"

    gif_request = request_of_size(server, SIZES["anim.gif"])
    assert gif_request.mime_type in {"image/jpeg", "image/png"}
    assert gif_request.image_format in {"JPEG", "PNG"}
    r, g, b = sent_image(gif_request).convert("RGB").getpixel((20, 15))
    assert r > 200 and b < 60, "the first (red) frame, not the second (blue)"

    heic_request = request_of_size(server, SIZES["photo.heic"])
    assert heic_request.mime_type in {"image/jpeg", "image/png", "image/heic"}

    trickled = by_source[urls["trickle"]]
    assert (trickled["width"], trickled["height"]) == (400, 328)
    assert image_host.hits["/slow"] == 1
    assert image_host.hits["/loop"] >= 2

    # names with spaces and non-ASCII come back exactly as found
    assert str(files["my photo ü.jpg"]) in by_source
    assert "写真 2.png" in out.read_text(encoding="utf-8"), "JSONL keeps non-ASCII as text"
    # the looping links are passed over (like broken links), and the walk ends
    assert not any("loop-" in source for source in by_source)
    assert "Captioned 9 of 20" in result.stderr and "11 failed" in result.stderr


@pytest.mark.parametrize("spelled", ["path", "glob"])
async def test_a_symlink_loop_given_by_name_fails_in_words(tmp_path, spelled) -> None:
    (tmp_path / "a.png").symlink_to("b.png")
    (tmp_path / "b.png").symlink_to("a.png")
    good = make_images(tmp_path / "ok", 1)[0]
    given = str(tmp_path / "a.png") if spelled == "path" else str(tmp_path / "a.pn?")
    out = tmp_path / "out.jsonl"
    async with FakeGemini() as server:
        result = await run_cli(given, str(good), "--jsonl", str(out), env=child_env(server))
    assert result.code == 1, result.stderr
    by_status = {r["status"]: r for r in read_jsonl(out)}
    assert by_status["done"]["source"] == str(good)
    assert "a.png" in by_status["failed"]["error"]
    assert (
        "symbolic links" in by_status["failed"]["error"] or "loop" in by_status["failed"]["error"]
    )


# --- cases that need the Pipeline API --------------------------------------------------


@pytest.fixture
async def pipeline(gemini: FakeGemini):
    settings = Settings(base_url=gemini.url, api_key="test-key", concurrency=2, retries=2)
    async with Pipeline(settings, backoff_base=0.001) as pipeline:
        yield pipeline


async def test_a_file_deleted_while_queued_fails_and_the_rest_go_on(
    gemini, pipeline, tmp_path
) -> None:
    first, doomed, last = make_images(tmp_path, 3)
    ledger = Ledger(pipeline)
    pipeline.pause()
    pipeline.add_inputs([str(tmp_path)])
    doomed.unlink()
    pipeline.resume()
    await settle(pipeline)

    states = {j.source.path.name: (j.state, j.error) for j in pipeline.jobs.values()}
    assert states[first.name] == (JobState.DONE, None)
    assert states[last.name] == (JobState.DONE, None)
    state, error = states[doomed.name]
    assert state is JobState.FAILED and error == f"No such file: {doomed}"
    ledger.check(gemini)
    assert len(gemini.requests) == 2


async def test_a_file_swapped_for_a_folder_while_queued(gemini, pipeline, tmp_path) -> None:
    (path,) = make_images(tmp_path, 1)
    pipeline.pause()
    (job,) = pipeline.add_inputs([str(path)])
    path.unlink()
    path.mkdir()
    pipeline.resume()
    await settle(pipeline)
    assert job.state is JobState.FAILED and "is a folder, not an image file" in job.error


async def test_an_unreadable_file_fails_with_permission_denied(gemini, pipeline, tmp_path) -> None:
    (locked, fine) = make_images(tmp_path, 2)
    locked.chmod(0)
    try:
        try:
            locked.read_bytes()
        except PermissionError:
            pass
        else:
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod 000 blocks nothing")
        pipeline.add_inputs([str(tmp_path)])
        await settle(pipeline)
    finally:
        locked.chmod(0o644)
    states = {j.source.path.name: (j.state, j.error) for j in pipeline.jobs.values()}
    assert states[fine.name][0] is JobState.DONE
    state, error = states[locked.name]
    assert state is JobState.FAILED and error == f"Cannot read {locked}: permission denied"

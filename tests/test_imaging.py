"""prepare_image and friends on images generated in the test (plus the sample assets)."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageStat

from tui_captioner.core.errors import InputError
from tui_captioner.core.imaging import (
    IMAGE_EXTENSIONS,
    PreparedImage,
    looks_like_html,
    make_thumbnail,
    prepare,
    prepare_image,
    read,
    read_file,
    sniff_mime,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def decode(prepared: PreparedImage) -> Image.Image:
    img = Image.open(io.BytesIO(prepared.data))
    img.load()
    return img


def gradient(size: tuple[int, int]) -> Image.Image:
    """A non-flat RGB picture (flat colours compress too well to test size choices)."""
    w, h = size
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    return Image.merge("RGB", (img.getchannel(0), img.getchannel(0).rotate(90), img.getchannel(0)))


def noise(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """Random pixels: PNG cannot compress them, so JPEG is always the smaller choice."""
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


# --- sniffing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
        ("HEIF", "image/heic"),
    ],
)
def test_sniff_mime_knows_the_formats(fmt: str, mime: str) -> None:
    data = encode(Image.new("RGB", (8, 8), "red"), fmt)
    assert sniff_mime(data[:64]) == mime


def test_sniff_mime_says_none_for_non_images() -> None:
    assert sniff_mime(b"") is None
    assert sniff_mime(b"hello world, this is text and not an image at all") is None
    assert sniff_mime(b"BMW is a car brand, not a bitmap header...") is None
    assert sniff_mime(b"<!DOCTYPE html><html></html>") is None


def test_sniff_mime_heif_brands() -> None:
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = b"ftyp" + major + b"\0\0\0\0" + b"".join(compatible)
        return (len(body) + 4).to_bytes(4, "big") + body

    assert sniff_mime(ftyp(b"heix", b"mif1")) == "image/heic"
    assert sniff_mime(ftyp(b"mif1", b"heic")) == "image/heic"
    assert sniff_mime(ftyp(b"mif1", b"miaf")) == "image/heif"
    assert sniff_mime(ftyp(b"msf1")) == "image/heif"
    assert sniff_mime(ftyp(b"avif", b"mif1")) == "image/avif"
    assert sniff_mime(ftyp(b"isom", b"mp42")) is None  # an MP4 video


def test_looks_like_html() -> None:
    assert looks_like_html(b"\xef\xbb\xbf  <!DOCTYPE html>\n<html>")
    assert looks_like_html(b"<HTML><BODY>404</BODY></HTML>")
    assert looks_like_html(b'<?xml version="1.0"?>\n<html xmlns="...">')
    assert not looks_like_html(b"\x89PNG\r\n\x1a\n")
    assert not looks_like_html(b"<svg xmlns='http://www.w3.org/2000/svg'/>")


def test_image_extensions_are_lowercase_with_a_dot() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic"} <= IMAGE_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in IMAGE_EXTENSIONS)


# --- prepare_image ----------------------------------------------------------------------


def test_downscale_respects_max_side_and_aspect() -> None:
    raw = encode(gradient((3000, 2000)), "JPEG", quality=95)
    p = prepare_image(raw, 1536, "wide.jpg")
    assert (p.width, p.height) == (3000, 2000)
    assert (p.sent_width, p.sent_height) == (1536, 1024)
    assert p.mime_type == "image/jpeg"
    assert decode(p).size == (1536, 1024)


def test_tall_png_is_downscaled_by_its_height() -> None:
    raw = encode(gradient((300, 1000)), "PNG")
    p = prepare_image(raw, 500, "tall.png")
    assert (p.sent_width, p.sent_height) == (150, 500)
    assert decode(p).size == (150, 500)


def test_sha256_and_size_are_of_the_original_bytes() -> None:
    raw = (ASSETS / "rocket.jpg").read_bytes()
    p = prepare_image(raw, 256, "rocket.jpg")
    assert p.sha256 == hashlib.sha256(raw).hexdigest()
    assert p.original_bytes == len(raw)
    assert p.data != raw


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img = Image.new("RGB", (400, 200), "white")
    img.paste((255, 0, 0), (0, 0, 200, 200))  # left half red as stored
    raw = encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    p = prepare_image(raw, 1536, "rotated.jpg")
    assert (p.width, p.height) == (200, 400)
    assert (p.sent_width, p.sent_height) == (200, 400)
    out = decode(p).convert("RGB")
    assert out.size == (200, 400)
    # Orientation 6: the stored left edge ends up at the top.
    assert out.getpixel((100, 20))[1] < 60
    assert out.getpixel((100, 380)) > (200, 200, 200)
    assert "exif" not in out.info or Image.Exif().get(0x0112) is None


def test_exif_orientation_with_downscale() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    raw = encode(gradient((2000, 1000)), "JPEG", exif=exif.tobytes())
    p = prepare_image(raw, 800, "rotated.jpg")
    assert (p.width, p.height) == (1000, 2000)
    assert (p.sent_width, p.sent_height) == (400, 800)


def test_png_with_alpha_stays_png_with_alpha() -> None:
    img = gradient((300, 200)).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize((300, 200)))
    p = prepare_image(encode(img, "PNG"), 100, "alpha.png")
    assert p.mime_type == "image/png"
    out = decode(p)
    assert out.mode == "RGBA"
    assert out.getchannel("A").getextrema()[0] < 255
    assert out.size == (100, 67)


def test_opaque_alpha_channel_becomes_jpeg() -> None:
    img = noise((300, 200)).convert("RGBA")
    p = prepare_image(encode(img, "PNG"), 1536, "opaque.png")
    assert p.mime_type == "image/jpeg"
    assert decode(p).mode == "RGB"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_unsupported_formats_are_converted(fmt: str) -> None:
    raw = encode(gradient((64, 48)), fmt)
    p = prepare_image(raw, 1536, f"x.{fmt.lower()}")
    assert p.mime_type in ("image/jpeg", "image/png")
    assert sniff_mime(p.data) == p.mime_type
    assert decode(p).size == (64, 48)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    img = Image.new("I;16", (64, 64), 32768)  # mid grey on a 0..65535 scale
    raw = encode(img, "PNG")
    assert Image.open(io.BytesIO(raw)).mode.startswith("I;16")
    p = prepare_image(raw, 1536, "grey16.png")
    mean = ImageStat.Stat(decode(p).convert("L")).mean[0]
    assert 120 <= mean <= 135


def test_cmyk_jpeg_becomes_rgb_jpeg() -> None:
    cmyk = Image.new("CMYK", (80, 60), (0, 255, 255, 0))  # pure red in CMYK
    raw = encode(cmyk, "JPEG")
    p = prepare_image(raw, 1536, "print.jpg")
    out = decode(p)
    assert p.mime_type == "image/jpeg"
    assert out.mode == "RGB"
    r, g, b = out.getpixel((40, 30))
    assert r > 200 and g < 60 and b < 60


def test_palette_png_with_transparency_keeps_it() -> None:
    img = Image.new("P", (50, 50), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 25, 50))
    raw = encode(img, "PNG", transparency=0)
    p = prepare_image(raw, 1536, "palette.png")
    assert p.mime_type == "image/png"
    out = decode(p).convert("RGBA")
    assert out.getpixel((40, 10))[3] == 0
    assert out.getpixel((10, 10)) == (0, 0, 255, 255)


def test_palette_png_without_transparency() -> None:
    img = gradient((200, 100)).convert("P")
    p = prepare_image(encode(img, "PNG"), 1536, "palette.png")
    assert p.mime_type in ("image/png", "image/jpeg")
    assert decode(p).size == (200, 100)


def test_animated_gif_uses_frame_zero() -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "lime", "blue")]
    raw = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert getattr(Image.open(io.BytesIO(raw)), "n_frames", 1) == 3
    p = prepare_image(raw, 1536, "anim.gif")
    r, g, b = decode(p).convert("RGB").getpixel((20, 15))
    assert r > 200 and g < 60 and b < 60


def test_animated_webp_uses_frame_zero_and_is_reencoded() -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("blue", "red")]
    raw = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    p = prepare_image(raw, 1536, "anim.webp")
    assert p.mime_type in ("image/jpeg", "image/png")
    r, _g, b = decode(p).convert("RGB").getpixel((20, 15))
    assert b > 200 and r < 60


def test_one_pixel_image() -> None:
    p = prepare_image(encode(Image.new("RGB", (1, 1), "red"), "PNG"), 1536, "dot.png")
    assert (p.width, p.height, p.sent_width, p.sent_height) == (1, 1, 1, 1)
    assert decode(p).size == (1, 1)


def test_small_original_is_sent_as_is_when_smaller() -> None:
    raw = encode(Image.new("RGB", (64, 64), "red"), "PNG")  # a flat PNG is tiny
    p = prepare_image(raw, 1536, "flat.png")
    assert p.data == raw
    assert p.mime_type == "image/png"


def test_webp_original_can_be_sent_as_is() -> None:
    raw = encode(gradient((120, 80)), "WEBP", quality=30)
    p = prepare_image(raw, 1536, "small.webp")
    assert p.data == raw
    assert p.mime_type == "image/webp"


def test_gif_is_never_sent_as_is() -> None:
    raw = encode(Image.new("P", (4, 4), 0), "GIF")
    p = prepare_image(raw, 1536, "tiny.gif")
    assert p.mime_type in ("image/jpeg", "image/png")
    assert p.data != raw


def test_empty_file_error() -> None:
    with pytest.raises(InputError, match=r"^empty\.jpg is empty$"):
        prepare_image(b"", 1536, "empty.jpg")


def test_truncated_jpeg_error() -> None:
    raw = encode(gradient((400, 300)), "JPEG")
    with pytest.raises(InputError) as info:
        prepare_image(raw[: len(raw) // 2], 1536, "cut.jpg")
    assert str(info.value) == "cut.jpg is truncated: the file ends before the image does"


def test_cut_short_after_the_signature_error() -> None:
    raw = (ASSETS / "chelsea.png").read_bytes()
    with pytest.raises(InputError) as info:
        prepare_image(raw[:10], 1536, "stub.png")
    assert str(info.value) == (
        "stub.png is damaged or truncated (it starts like a PNG image but cannot be decoded)"
    )
    with pytest.raises(InputError, match=r"^stub\.png is truncated"):
        prepare_image(raw[:5000], 1536, "stub.png")


def test_text_named_png_error() -> None:
    with pytest.raises(InputError) as info:
        prepare_image(b"hello, I am a text file\n" * 5, 1536, "notes.png")
    assert str(info.value) == "notes.png is not an image file (it contains text)"


def test_html_named_jpg_error() -> None:
    with pytest.raises(InputError) as info:
        prepare_image(b"<!DOCTYPE html><html><body>404</body></html>", 1536, "saved.jpg")
    assert str(info.value) == "saved.jpg is not an image file (it looks like a web page)"


def test_binary_junk_error() -> None:
    with pytest.raises(InputError, match=r"^junk\.png is not an image file \(the format"):
        prepare_image(os.urandom(1000).replace(b"\x89", b"\x00"), 1536, "junk.png")


def test_decompression_bomb_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    raw = encode(Image.new("RGB", (200, 100)), "PNG")  # 20,000 px: over twice the limit
    with pytest.raises(InputError) as info:
        prepare_image(raw, 1536, "bomb.png")
    assert str(info.value) == "bomb.png is too large to decode safely (0.02 megapixels)"


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(
            "error", marks=pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
        ),
        pytest.param(
            "ignore", marks=pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
        ),
    ],
)
def test_decompression_bomb_warning_range_is_an_error_too(
    monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """Pillow only warns between 1x and 2x the limit; whatever the warning filters say."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    raw = encode(Image.new("RGB", (30, 50)), "PNG")  # 1,500 px: between 1x and 2x the limit
    with pytest.raises(InputError, match=r"^bomb\.png is too large to decode safely"):
        prepare_image(raw, 1536, "bomb.png")


def test_heic_round_trip() -> None:
    if not pillow_heif.libheif_info().get("encoders"):
        pytest.skip("this libheif has no HEIC encoder")
    raw = encode(gradient((320, 240)), "HEIF", quality=80)
    assert sniff_mime(raw[:64]) == "image/heic"
    p = prepare_image(raw, 160, "phone.heic")
    assert p.mime_type == "image/jpeg"
    assert (p.width, p.height) == (320, 240)
    assert decode(p).size == (160, 120)


def test_real_assets_prepare() -> None:
    for path in sorted(ASSETS.glob("*.*g")):
        p = prepare_image(path.read_bytes(), 512, path.name)
        assert max(p.sent_width, p.sent_height) <= 512
        assert p.mime_type in ("image/jpeg", "image/png")
        assert decode(p).size == (p.sent_width, p.sent_height)


async def test_async_wrappers(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(encode(gradient((100, 50)), "PNG"))
    raw = await read(path)
    p = await prepare(raw, 40, "a.png")
    assert (p.sent_width, p.sent_height) == (40, 20)


# --- read_file ----------------------------------------------------------------------------


def test_read_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_file(tmp_path / "gone.png")
    assert str(info.value) == f"No such file: {tmp_path / 'gone.png'}"

    with pytest.raises(InputError) as info:
        read_file(tmp_path)
    assert str(info.value) == f"{tmp_path} is a folder, not an image file"

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2048)
    with pytest.raises(InputError) as info:
        read_file(big, max_bytes=1024)
    assert str(info.value) == f"{big} is larger than 1 KB (2 KB)"
    assert read_file(big) == b"\0" * 2048


def test_read_file_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked.png"
    locked.write_bytes(b"x")
    locked.chmod(0)
    if os.name != "posix" or os.geteuid() == 0:  # root reads anything: simulate the refusal

        def refuse(self: Path, *args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(InputError) as info:
        read_file(locked)
    assert str(info.value) == f"Cannot read {locked}: permission denied"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_file_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is not a regular file"):
        read_file(fifo)


# --- make_thumbnail -------------------------------------------------------------------------


def test_thumbnail_from_path_is_small_upright_rgb(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(gradient((4000, 3000)), "JPEG", exif=exif.tobytes()))
    thumb = make_thumbnail(path, (200, 200))
    assert thumb.mode == "RGB"
    assert thumb.size == (150, 200)  # portrait once orientation is applied


def test_thumbnail_keeps_alpha_and_scales_16_bit() -> None:
    img = Image.new("RGBA", (100, 100), (0, 0, 255, 0))
    thumb = make_thumbnail(encode(img, "PNG"), (32, 32))
    assert thumb.mode == "RGBA" and thumb.size == (32, 32)
    grey = make_thumbnail(encode(Image.new("I;16", (64, 64), 32768), "PNG"), (16, 16))
    assert grey.mode == "RGB"
    assert 120 <= ImageStat.Stat(grey).mean[0] <= 135


def test_thumbnail_of_non_image_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("text")
    with pytest.raises(InputError, match=r"notes\.png is not an image file"):
        make_thumbnail(path, (64, 64))

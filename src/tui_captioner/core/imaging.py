"""Turn raw image bytes into what we send to the model, off the event loop.

Decoding a 40-megapixel JPEG takes long enough to freeze a terminal UI, so everything
here is plain synchronous code meant for a worker thread; the async wrappers only hop
onto one with `asyncio.to_thread`. The rules come from the service: it accepts inline
images only as JPEG, PNG, WebP, HEIC or HEIF, and it tiles large images anyway, so we
shrink them (longest side `max_side`) and re-encode to JPEG, or PNG when transparency
matters. Every failure a user can cause becomes an `InputError` with a sentence that
names the file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
from PIL import Image, UnidentifiedImageError

from tui_captioner.core.errors import InputError

# Registered once, at import: Pillow then opens HEIC/HEIF like any other format.
pillow_heif.register_heif_opener()

# Pillow only *warns* between 1x and 2x MAX_IMAGE_PIXELS. Turning that warning into an
# exception (only for Pillow's own warning, installed once, no per-call mutation of the
# global filter list, which would not be thread-safe) means a bomb never reaches the
# decoder. `_check_pixels` repeats the check so the rule holds even when something
# (a test runner) has reset the warning filters.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning, module=r"PIL\.")

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)
"""Lowercase file extensions, WITH the leading dot (compare with `Path.suffix.lower()`)."""

DEFAULT_MAX_FILE_BYTES = 200 * 1024 * 1024
JPEG_QUALITY = 90

# Bytes the service accepts as they are; anything else is always re-encoded.
_SENDABLE_AS_IS = frozenset({"image/jpeg", "image/png", "image/webp"})
# Pixel modes we can hand over without conversion when passing the original through.
_PLAIN_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2", b"heif"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
# EXIF orientation -> the transpose that undoes it (the table ImageOps.exif_transpose uses).
_ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112
# Errors Pillow's decoders raise on damaged data (they are not consistent about it).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


# --- sniffing -------------------------------------------------------------------------


def sniff_mime(head: bytes) -> str | None:
    """The image type the first bytes announce, or None when they are not an image.

    File names and Content-Type headers lie (a 404 page saved as .png, an image served
    as application/octet-stream); magic bytes do not. 32 bytes are enough for every
    format here except BMP (18) and HEIF files that list their brand late (use ~64).
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "image/tiff"
    if head[:2] == b"BM" and len(head) >= 18:
        # "BM" alone is too weak (text can start with it): check the DIB header size too.
        (dib_size,) = struct.unpack_from("<I", head, 14)
        if dib_size in _BMP_HEADER_SIZES:
            return "image/bmp"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        return _sniff_ftyp(head)
    if head[:4] == b"\x00\x00\x01\x00" and head[4:6] not in (b"", b"\x00\x00"):
        return "image/x-icon"  # favicons: what many "image" URLs turn out to be
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "image/jp2"
    return None


def _sniff_ftyp(head: bytes) -> str | None:
    """HEIF-family files share one container; the brands say which codec is inside."""
    (box_size,) = struct.unpack_from(">I", head, 0)
    end = min(len(head), box_size) if box_size >= 16 else min(len(head), 12)
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    major = brands[0]
    if major in _AVIF_BRANDS:
        return "image/avif"
    if major in _HEIC_BRANDS or any(b in _HEIC_BRANDS for b in brands):
        return "image/heic"
    if any(b in _AVIF_BRANDS for b in brands):
        return "image/avif"
    if major in _HEIF_BRANDS or any(b in _HEIF_BRANDS for b in brands):
        return "image/heif"
    return None


def looks_like_html(head: bytes) -> bool:
    """Whether the bytes start like a web page (the usual thing served instead of an image)."""
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")):
        return True
    return text.startswith(b"<") and b"<html" in text


def _describe_non_image(head: bytes) -> str:
    """A short reason for 'not an image', shown in parentheses after the file name."""
    if looks_like_html(head):
        return "it looks like a web page"
    if b"<svg" in head[:1024].lower():
        return "it is an SVG drawing; only bitmap images can be captioned"
    sample = head[:512]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return "the format is not recognised"
    return "it contains text"


# --- preparing an image to send -------------------------------------------------------


@dataclass(frozen=True)
class PreparedImage:
    """The bytes to send plus the facts a job reports about them."""

    data: bytes
    mime_type: str  # what `data` really is: image/jpeg, image/png or (as is) image/webp
    width: int  # original size, after EXIF orientation
    height: int
    sent_width: int
    sent_height: int
    sha256: str  # hex digest of the ORIGINAL bytes: the cache key, stable across settings
    original_bytes: int


def sha256_hex(raw: bytes) -> str:
    """The content hash that identifies an image in results and in the cache."""
    return hashlib.sha256(raw).hexdigest()


def prepare_image(raw: bytes, max_side: int, name: str, sha256: str | None = None) -> PreparedImage:
    """Decode, orient, shrink and re-encode one image (blocking; run it in a thread).

    The original is sent unchanged only when it is already a type the service takes,
    fits within `max_side`, needs no rotation or pixel conversion, and is smaller
    than the re-encoded version. `sha256` saves hashing again when the caller has it.
    """
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    if not raw:
        raise InputError(f"{name} is empty")
    digest = sha256 or sha256_hex(raw)
    img = _open(raw, name)
    mime = sniff_mime(raw[:64])
    stored_w, stored_h = img.size
    orientation = _orientation(img)
    swaps = orientation in (5, 6, 7, 8)
    width, height = (stored_h, stored_w) if swaps else (stored_w, stored_h)
    # MPO (many camera JPEGs) lists a preview as a second frame; it is still one photo.
    animated = img.format != "MPO" and getattr(img, "n_frames", 1) > 1
    needs_resize = max(stored_w, stored_h) > max_side

    if needs_resize and img.format in ("JPEG", "MPO"):
        # DCT scaling while decoding: a 4000x3000 JPEG decodes at 2000x1500 for a
        # 1536 target, roughly 3x faster, and LANCZOS finishes the job.
        scale = max_side / max(stored_w, stored_h)
        img.draft(None, (math.ceil(stored_w * scale), math.ceil(stored_h * scale)))
    _load(img, name)

    pixels = _normalise_mode(img)
    if max(pixels.size) > max_side:
        pixels.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if orientation in _ORIENTATION_FIX:
        pixels = pixels.transpose(_ORIENTATION_FIX[orientation])

    data, out_mime = _encode(pixels)
    sent_w, sent_h = pixels.size
    can_pass_through = (
        mime in _SENDABLE_AS_IS
        and not needs_resize
        and not animated
        and orientation == 1
        and img.mode in _PLAIN_MODES
    )
    if can_pass_through and mime and len(raw) <= len(data):
        data, out_mime, sent_w, sent_h = raw, mime, width, height
    return PreparedImage(
        data=data,
        mime_type=out_mime,
        width=width,
        height=height,
        sent_width=sent_w,
        sent_height=sent_h,
        sha256=digest,
        original_bytes=len(raw),
    )


async def prepare(raw: bytes, max_side: int, name: str, sha256: str | None = None) -> PreparedImage:
    """`prepare_image` in a worker thread, so the event loop keeps painting."""
    return await asyncio.to_thread(prepare_image, raw, max_side, name, sha256)


def _open(raw: bytes, name: str) -> Image.Image:
    """Open lazily (header only), turning every way this fails into a sentence."""
    try:
        img = Image.open(io.BytesIO(raw))
    except UnidentifiedImageError:
        mime = sniff_mime(raw[:64])
        if mime is not None:  # the right signature, then nothing usable: cut or damaged
            kind = mime.split("/")[1].removeprefix("x-").upper()
            raise InputError(
                f"{name} is damaged or truncated (it starts like a {kind} image "
                "but cannot be decoded)"
            ) from None
        raise InputError(f"{name} is not an image file ({_describe_non_image(raw)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(
            f"{name} is too large to decode safely ({_megapixels_from(exc)} megapixels)"
        ) from None
    except _DECODE_ERRORS as exc:
        raise _damaged(name, exc) from None
    _check_pixels(img, name)
    return img


def _load(img: Image.Image, name: str) -> None:
    """Decode the pixels (frame 0 for animations); a cut-off file fails here."""
    try:
        img.load()
    except MemoryError:
        raise InputError(f"{name} is too large to decode with the memory available") from None
    except _DECODE_ERRORS as exc:
        raise _damaged(name, exc) from None


def _damaged(name: str, exc: BaseException) -> InputError:
    if "truncated" in str(exc).lower():
        return InputError(f"{name} is truncated: the file ends before the image does")
    return InputError(f"{name} is damaged and cannot be decoded ({_reason(exc)})")


def _check_pixels(img: Image.Image, name: str) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    pixels = img.size[0] * img.size[1]
    if limit is not None and pixels > limit:
        raise InputError(f"{name} is too large to decode safely ({_megapixels(pixels)} megapixels)")


def _megapixels(pixels: int) -> str:
    mp = pixels / 1_000_000
    return f"{mp:,.0f}" if mp >= 10 else f"{mp:.2g}"


def _megapixels_from(exc: Exception) -> str:
    """Pillow puts the pixel count in its message ("Image size (N pixels) exceeds ...")."""
    for word in str(exc).replace("(", " ").split():
        if word.isdigit():
            return _megapixels(int(word))
    return "too many"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def _orientation(img: Image.Image) -> int:
    """EXIF orientation 1-8; anything unreadable or out of range counts as upright."""
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # broken EXIF must not fail an otherwise good image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Pixels as L, RGB, LA or RGBA; alpha only when some pixel is really transparent.

    Returns `img` itself when it is already in such a mode, else a new image.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _to_8_bit(img)
    if mode == "1":
        return img.convert("L")
    if mode in ("L", "RGB"):
        return img
    if mode == "P":
        if "transparency" in img.info:
            return _drop_opaque_alpha(img.convert("RGBA"))
        return img.convert("RGB")
    if mode in ("PA", "RGBa", "RGBX"):
        return _drop_opaque_alpha(img.convert("RGBA"))
    if mode == "La":
        return _drop_opaque_alpha(img.convert("LA"))
    if mode in ("LA", "RGBA"):
        return _drop_opaque_alpha(img)
    # CMYK, YCbCr, LAB, HSV and the rest: Pillow converts these to RGB correctly.
    return img.convert("RGB")


def _drop_opaque_alpha(img: Image.Image) -> Image.Image:
    """An alpha channel that is 255 everywhere only costs bytes: drop it, allow JPEG."""
    low, _high = img.getchannel("A").getextrema()
    if low < 255:
        return img
    return img.convert("L" if img.mode == "LA" else "RGB")


def _to_8_bit(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit and float images to 0-255; a plain convert() clips them to white."""
    if img.mode == "F":
        _low, high = img.getextrema()
        factor = 255.0 if high <= 1.0 else (255.0 / high if high > 255 else 1.0)
        return img.point(lambda v: v * factor).convert("L")
    if img.mode == "I":
        # 32-bit integers carry no bit depth: keep 8-bit data as is, read data that fits
        # in 16 bits as 16-bit, and stretch anything wider to its actual maximum.
        wide = img
        _low, high = wide.getextrema()
        divisor = 1.0 if high <= 255 else 257.0 if high <= 65535 else high / 255.0
    else:
        wide, divisor = img.convert("I"), 257.0
    return wide.point(lambda v: v * (1.0 / divisor)).convert("L")


def _encode(img: Image.Image) -> tuple[bytes, str]:
    """JPEG for opaque pixels, PNG when there is alpha to keep."""
    out = io.BytesIO()
    if img.mode in ("RGBA", "LA"):
        img.save(out, "PNG", compress_level=6)
        return out.getvalue(), "image/png"
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), "image/jpeg"


# --- reading files --------------------------------------------------------------------


def read_file(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """Read a whole image file (blocking), with a sentence for each way this fails.

    Refuses anything that is not a regular file: reading a FIFO or a device would
    block a worker thread forever.
    """
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path} is a folder, not an image file")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path} is not a regular file")
        if st.st_size > max_bytes:
            raise InputError(
                f"{path} is larger than {format_size(max_bytes)} ({format_size(st.st_size)})"
            )
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"No such file: {path}") from None
    except PermissionError:
        raise InputError(f"Cannot read {path}: permission denied") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not an image file") from None
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or _reason(exc)}") from None
    if len(data) > max_bytes:  # grew while we read it
        raise InputError(f"{path} is larger than {format_size(max_bytes)}")
    return data


async def read(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """`read_file` in a worker thread (a slow disk or network share must not stall the UI)."""
    return await asyncio.to_thread(read_file, path, max_bytes)


def format_size(n: int) -> str:
    """Bytes as people say them: 50 MB, 1.5 MB, 12 KB, 300 bytes (powers of 1024)."""
    if n >= 1024 * 1024:
        value = n / (1024 * 1024)
        return f"{value:.0f} MB" if value >= 10 or value.is_integer() else f"{value:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


# --- thumbnails -----------------------------------------------------------------------


def make_thumbnail(raw_or_path: bytes | Path, max_size: tuple[int, int]) -> Image.Image:
    """A small upright RGB or RGBA image for the preview pane (blocking; run in a thread).

    The result is detached from any file, so the caller can keep it after the source
    is gone.
    """
    if isinstance(raw_or_path, (str, os.PathLike)):
        path = Path(raw_or_path)
        raw, name = read_file(path), path.name
    else:
        raw, name = raw_or_path, "image"
    if not raw:
        raise InputError(f"{name} is empty")
    img = _open(raw, name)
    orientation = _orientation(img)
    box = (max_size[1], max_size[0]) if orientation in (5, 6, 7, 8) else max_size
    if img.format in ("JPEG", "MPO"):
        img.draft(None, box)
    _load(img, name)
    pixels = _normalise_mode(img)
    # convert() always returns a new image, so the result never shares the decoder's.
    pixels = pixels.convert("RGBA" if pixels.mode in ("LA", "RGBA") else "RGB")
    pixels.thumbnail(box, Image.Resampling.LANCZOS)
    if orientation in _ORIENTATION_FIX:
        pixels = pixels.transpose(_ORIENTATION_FIX[orientation])
    return pixels

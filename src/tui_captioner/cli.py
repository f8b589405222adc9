"""Entry point: `tui-captioner [INPUT...]` opens the app, `tui-captioner run` is headless."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tui_captioner.config import load_settings
from tui_captioner.core.cache import ResultCache
from tui_captioner.core.captioner import find_api_key, uses_vertex
from tui_captioner.core.errors import UsageError
from tui_captioner.core.imaging import format_size
from tui_captioner.core.settings import DEFAULT_MODEL, Settings
from tui_captioner.core.sources import read_stdin_inputs
from tui_captioner.headless import EXIT_INTERRUPTED, EXIT_USAGE, run_headless
from tui_captioner.paths import cache_dir, config_file

INPUT_HELP = (
    "image files, folders (searched recursively), glob patterns, http(s) URLs or file:// "
    "URIs; '-' reads one input per line from stdin"
)
NO_KEY_MESSAGE = (
    "No Gemini API key found. Set GEMINI_API_KEY (get a key at "
    "https://aistudio.google.com/apikey), or GOOGLE_API_KEY, or the Vertex AI variables "
    "(GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_LOCATION)."
)


def _settings_options(parser: argparse.ArgumentParser) -> None:
    """The options both commands share; None means 'not given' so lower layers show."""
    d = Settings()
    group = parser.add_argument_group("captioning")
    group.add_argument("--model", help=f"Gemini model id (default: {DEFAULT_MODEL})")
    group.add_argument("--prompt", help="what to ask for each image (default: an alt-text prompt)")
    group.add_argument(
        "-j",
        "--concurrency",
        type=int,
        metavar="N",
        help=f"requests in flight at once (default: {d.concurrency})",
    )
    group.add_argument(
        "--max-side",
        type=int,
        metavar="PX",
        help=f"downscale so the longest side is at most PX before sending (default: {d.max_side})",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="send requests to this endpoint instead of Google's (a proxy or gateway); "
        "GOOGLE_GEMINI_BASE_URL works too",
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help=f"give up on one request after S seconds, streaming included (default: {d.timeout:g})",
    )
    group.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help=f"attempts per image for rate limits and server errors (default: {d.retries})",
    )
    group.add_argument(
        "--rpm",
        type=int,
        metavar="N",
        help="stay under N requests per minute from the first request (a known quota); "
        "without it the pace is learned from the first 429",
    )
    group.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        default=None,
        help="caption every image again, even those already in the results cache",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"keep the results cache here (default: {cache_dir()}; or TUI_CAPTIONER_CACHE_DIR)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"settings file in TOML (default: {config_file()})",
    )


def build_run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tui-captioner run",
        description="Caption images without the app: results as JSON lines, progress on stderr.",
        epilog="Exit status: 0 every image captioned, 1 some failed, 2 bad usage, "
        "130 interrupted. The API key comes from GEMINI_API_KEY (or GOOGLE_API_KEY).",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help=INPUT_HELP)
    _settings_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--jsonl", metavar="PATH", help="write one JSON line per image here (default: stdout)"
    )
    out.add_argument("--csv", type=Path, metavar="PATH", help="also write the results as CSV")
    out.add_argument(
        "--sidecar",
        action="store_true",
        help="write each caption to NAME.txt beside its local image (training-set style)",
    )
    return parser


def build_app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tui-captioner",
        description="Caption images with Gemini in a terminal app. "
        "'tui-captioner run --help' shows the headless command; "
        "'tui-captioner cache [info|clear]' shows or clears the results cache.",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help=INPUT_HELP)
    parser.add_argument("--version", action="version", version=version("tui-captioner"))
    _settings_options(parser)
    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k in Settings.names()}


def _expand_stdin(inputs: list[str]) -> list[str]:
    if "-" not in inputs:
        return inputs
    expanded: list[str] = []
    for item in inputs:
        expanded.extend(read_stdin_inputs(sys.stdin) if item == "-" else [item])
    return expanded


def has_credentials(settings: Settings) -> bool:
    return bool(settings.api_key or find_api_key() or uses_vertex())


def run_command(argv: list[str]) -> int:
    args = build_run_parser().parse_args(argv)
    settings = load_settings(_flags(args), path=args.config)
    inputs = _expand_stdin(args.inputs)
    if not inputs:
        raise UsageError("No inputs: give image files, folders, globs or URLs (or '-' for stdin).")
    if not has_credentials(settings):
        raise UsageError(NO_KEY_MESSAGE)
    return asyncio.run(
        run_headless(settings, inputs, jsonl=args.jsonl, csv_path=args.csv, sidecar=args.sidecar)
    )


def app_command(argv: list[str]) -> int:
    args = build_app_parser().parse_args(argv)
    settings = load_settings(_flags(args), path=args.config)
    from tui_captioner.tui.app import run_app  # Textual only loads for the app

    return run_app(settings, _expand_stdin(args.inputs))


def build_cache_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tui-captioner cache",
        description="Show or clear the results cache (captions kept so no image is paid twice).",
    )
    parser.add_argument("action", choices=["info", "clear"], nargs="?", default="info")
    parser.add_argument("--cache-dir", metavar="DIR", help=f"default: {cache_dir()}")
    return parser


def cache_command(argv: list[str]) -> int:
    args = build_cache_parser().parse_args(argv)
    with ResultCache.open_in(args.cache_dir) as cache:
        if args.action == "clear":
            removed = cache.clear()
            print(f"Removed {removed} cached caption(s) from {cache.path}.")
        else:
            stats = cache.stats()
            print(f"{stats.entries} cached caption(s), {format_size(stats.size_bytes)}")
            print(f"in {stats.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["run"]:
            return run_command(argv[1:])
        if argv[:1] == ["cache"]:
            return cache_command(argv[1:])
        return app_command(argv)
    except UsageError as exc:
        print(f"tui-captioner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED

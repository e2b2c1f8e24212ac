"""Command line for the AI21 emulator.

Usage: ``python -m ai21_emulator [--host H] [--port P] [--api-key K ...] [--log]
[--max-records N] [--flavour ai21|vllm] [--served-model-name NAME ...] [--max-model-len N]
[--enable-force-include-usage] [--no-parsers [--unparsed-tool-calls]]``

Prints the base URL (e.g. ``http://127.0.0.1:8021/studio/v1``, or ``.../v1`` for vLLM) as the
first line on stdout, then serves until SIGINT/SIGTERM and exits 0. ``--port 0`` picks a free
port. ``--log`` prints one line per API request to stderr (method, path, status, model, time);
keys are never printed. ``--max-records N`` (default 10000; 0: all) keeps only the newest N
request records, so a server left running holds bounded memory. The vLLM options are named
after vLLM's own server flags.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._catalog import DEFAULT_MAX_MODEL_LEN
from ._emulator import DEFAULT_API_KEY, FLAVOURS, Emulator

DEFAULT_PORT = 8021
DEFAULT_MAX_RECORDS = 10_000


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, not {text!r}")
    return int(text)


def _non_negative_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, not {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ai21_emulator",
        description="Serve an offline emulator of the AI21 Studio REST API on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port, 0 = any free (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=(
            f"accepted bearer token; repeat for several (default: {DEFAULT_API_KEY!r}; "
            "for --flavour vllm none, so no key is needed)"
        ),
    )
    parser.add_argument("--log", action="store_true", help="log each request to stderr")
    parser.add_argument(
        "--max-records",
        type=_non_negative_int,
        default=DEFAULT_MAX_RECORDS,
        metavar="N",
        help="keep the newest N requests for GET /_emulator/requests, so a server that runs for "
        f"long holds bounded memory; 0 keeps all (default: {DEFAULT_MAX_RECORDS})",
    )
    parser.add_argument(
        "--flavour",
        choices=FLAVOURS,
        default="ai21",
        help="ai21: AI21's hosted API (default); vllm: vLLM's OpenAI-compatible server",
    )
    vllm = parser.add_argument_group("vLLM flavour")
    vllm.add_argument(
        "--served-model-name",
        action="append",
        dest="models",
        metavar="NAME",
        help="a served model name; repeat for several (default: AI21's open models)",
    )
    vllm.add_argument(
        "--max-model-len",
        type=int,
        default=DEFAULT_MAX_MODEL_LEN,
        metavar="N",
        help=f"context length in tokens (default: {DEFAULT_MAX_MODEL_LEN})",
    )
    vllm.add_argument(
        "--enable-force-include-usage",
        action="store_true",
        dest="force_include_usage",
        help="end every stream with a usage chunk",
    )
    vllm.add_argument(
        "--no-parsers",
        action="store_false",
        dest="parsers",
        help="answer as a server without --reasoning-parser, --enable-auto-tool-choice and "
        "--tool-call-parser (reasoning left in content; tool_choice auto refused with a 400)",
    )
    vllm.add_argument(
        "--unparsed-tool-calls",
        action="store_true",
        help="with --no-parsers: accept tools and leave the model's calls in content "
        "(a server of another kind without a tool parser, e.g. SGLang)",
    )
    return parser


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def configure(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Emulator]:
    """The command line's options and the emulator they make, not started yet; an invalid
    command line exits with status 2 and the usage, as argparse does."""
    args = _parser().parse_args(argv)
    if args.flavour != "vllm" and (
        args.models
        or args.force_include_usage
        or not args.parsers
        or args.unparsed_tool_calls
        or args.max_model_len != DEFAULT_MAX_MODEL_LEN
    ):
        _parser().error(
            "--served-model-name, --max-model-len, --enable-force-include-usage, "
            "--no-parsers and --unparsed-tool-calls need --flavour vllm"
        )
    if args.unparsed_tool_calls and args.parsers:
        _parser().error("--unparsed-tool-calls needs --no-parsers")
    vllm_options = (
        {
            "models": args.models,
            "max_model_len": args.max_model_len,
            "force_include_usage": args.force_include_usage,
            "parsers": args.parsers,
            "unparsed_tool_calls": args.unparsed_tool_calls,
        }
        if args.flavour == "vllm"
        else {}
    )
    try:
        emulator = Emulator(
            api_keys=args.api_keys,
            host=args.host,
            port=args.port,
            flavour=args.flavour,
            max_records=args.max_records or None,
            **vllm_options,
        )
    except ValueError as exc:  # e.g. --api-key "" or --max-model-len 0
        _parser().error(str(exc))
    return args, emulator


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM. Returns the exit status."""
    args, emulator = configure(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if args.log:
        emulator._state.log = _log
    name = "AI21" if args.flavour == "ai21" else "vLLM (Jamba)"
    try:
        emulator.start()
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        print(f"python -m ai21_emulator: {exc}", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with emulator:
            print(emulator.base_url, flush=True)
            if emulator.api_key is None:
                _log(f"{name} emulator ready; no API key needed. Ctrl-C to stop.")
            elif args.api_keys is None:
                _log(f"{name} emulator ready; use api_key={DEFAULT_API_KEY!r}. Ctrl-C to stop.")
            else:
                _log(f"{name} emulator ready; accepting {len(args.api_keys)} API key(s).")
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())

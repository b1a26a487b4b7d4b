"""``python -m offline.emulator``: serve the emulator until SIGTERM or SIGINT.

Once the server answers, the info file (see README.md) is written atomically, so a process waiting
for it never reads half a file; a stale one is removed at startup and the file is removed again on
a clean exit, so its presence means "an emulator is answering on this port".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .config import EmulatorConfig
from .emulator import Emulator


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m offline.emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--info", type=Path, required=True, help="where to write the info JSON")
    parser.add_argument("--config", type=Path, help="EmulatorConfig as JSON (default: the sample estate)")
    parser.add_argument("--tls-dir", type=Path, help="CA and certificate folder (default: <info dir>/tls)")
    parser.add_argument("--token-lifetime", type=int, help="token lifetime in seconds (default 86400)")
    parser.add_argument("--page-size", type=int, help="runs per queryPipelineRuns page (default 100)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every call")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        config = EmulatorConfig.load(args.config) if args.config else EmulatorConfig.default()
        overrides = {
            "token_lifetime_s": args.token_lifetime,
            "page_size": args.page_size,
        }
        data = config.to_dict()
        data.update({k: v for k, v in overrides.items() if v is not None})
        config = EmulatorConfig.from_dict(data)
    except (OSError, ValueError) as exc:
        print(f"emulator: bad configuration: {exc}", file=sys.stderr)
        return 2
    args.info.unlink(missing_ok=True)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    emulator = Emulator(
        config,
        tls_dir=args.tls_dir or args.info.parent / "tls",
        port=args.port,
        verbose=args.verbose,
        latency_s=args.latency_ms / 1000,
    )
    emulator.start()
    try:
        write_atomically(args.info, json.dumps(emulator.info, indent=2) + "\n")
        print(f"emulator: serving on {emulator.base_url} (info: {args.info})", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        args.info.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``fbp-landcover`` command line.

Exit codes: 0 success, 1 a problem with the input or settings (one sentence on stderr),
2 wrong usage, 3 an unexpected internal error (``--debug`` shows the traceback), 130 cancelled.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback

from .. import SOFTWARE
from ..errors import CancelledError, FbpError, explain

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL, EXIT_CANCELLED = 0, 1, 2, 3, 130


class TqdmProgress:
    """A progress callback drawing a tqdm bar with the stage text and the run's one estimate (the panel's:
    ``RunEstimate``, from the current stage's rate; tqdm's own average over the whole bar would be fooled
    by the quick first stages)."""

    def __init__(self, quiet: bool = False) -> None:
        self.bar = None
        self.quiet = quiet
        self.estimate = None

    def __call__(self, fraction: float, message: str) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            from ..progress import RunEstimate

            self.estimate = RunEstimate()
            self.bar = tqdm(total=1000, unit="‰", dynamic_ncols=True, file=sys.stderr)
        self.bar.set_description_str(message.split(" (about")[0][:48], refresh=False)
        text = self.estimate.update(fraction, message).replace("{", "(").replace("}", ")")
        self.bar.bar_format = "{l_bar}{bar}| " + text
        self.bar.update(max(0, int(fraction * 1000) - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fbp-landcover", description="Map 24 Five-Billion-Pixels land-cover "
                                                                  "classes from a satellite image, "
                                                                  "and adapt the model to it without labels.")
    p.add_argument("--version", action="version", version=SOFTWARE)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = p.add_subparsers(dest="command", required=True)

    from . import many, training
    from . import map as map_commands

    map_commands.add_commands(sub)
    many.add_commands(sub)
    training.add_commands(sub)

    return p


def _stop_signal(signum, frame) -> None:
    """SIGTERM (a kill, a job scheduler's stop) is handled as Ctrl-C: the same cancellation, so every run
    removes what it half-wrote."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = TqdmProgress(quiet=args.quiet)
    try:
        previous = signal.signal(signal.SIGTERM, _stop_signal)
    except ValueError:  # not the main thread (main called from a worker thread): its caller handles signals
        return _run(args, progress)
    try:
        return _run(args, progress)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args, progress) -> int:
    try:
        return args.func(args, progress)
    except CancelledError as exc:
        progress.close()
        print(f"fbp-landcover: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        progress.close()
        print("fbp-landcover: cancelled (Ctrl-C or a stop signal); no output was written.", file=sys.stderr)
        return EXIT_CANCELLED
    except FbpError as exc:
        progress.close()
        if args.debug:
            traceback.print_exc()
        print(f"fbp-landcover: {exc}", file=sys.stderr)
        return EXIT_USER
    except BrokenPipeError:  # the reader went away (… | head): stop quietly, no "Exception ignored" at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the last line of defence: one sentence, not a traceback
        progress.close()
        if args.debug:
            traceback.print_exc()
        sentence = explain(exc)
        if sentence:  # a full disk, a damaged raster...: the user's to fix
            print(f"fbp-landcover: {sentence}", file=sys.stderr)
            return EXIT_USER
        print(f"fbp-landcover: internal error ({type(exc).__name__}: {exc}); "
              "run again with --debug and report the traceback.", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

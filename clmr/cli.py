"""What the top-level scripts share: bad input becomes one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable

from clmr.audio import AudioFileError
from clmr.config import ConfigError
from clmr.datasets.dataset import DatasetError
from clmr.datasets.download import DownloadError
from clmr.filenames import PRINTABLE_ERRORS, printable, shown
from clmr.preprocessing import PreprocessError

USER_ERRORS = (AudioFileError, ConfigError, DatasetError, DownloadError, PreprocessError, FileNotFoundError)


def quiet_libraries() -> None:
    """Keep Lightning's and PyTorch's advice off the console; our own warnings stay."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def run(main: Callable[[], object]) -> None:
    """Run a script's main(); a user error prints `error: ...` and exits with status 1.

    An OSError about a file (a full disk, a read-only folder, a permission) is a user error too:
    `error: <file>: <what the OS said>`. One that names no file is left to show its traceback: it is
    more likely a bug than something the user can fix.
    """
    quiet_libraries()
    printable_streams()
    try:
        main()
    except BrokenPipeError:  # stdout closed early (`predict.py ... | head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as err:
        if err.filename is None:
            if isinstance(err, USER_ERRORS):
                _fail(str(err))
            raise
        _fail(file_error(err))
    except USER_ERRORS as err:
        _fail(str(err), silent=getattr(err, "silent", False))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def printable_streams() -> None:
    """stdout and stderr write an undecodable byte of a file name as \\xNN instead of raising
    UnicodeEncodeError, wherever a script prints a path it was given (a --log_dir, a dataset folder)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=PRINTABLE_ERRORS)


def file_error(err: OSError) -> str:
    """`<file>: <what the OS said>` (`<file> -> <other file>` for a failed rename or link)."""
    names = shown(err.filename) + (f" -> {shown(err.filename2)}" if err.filename2 is not None else "")
    reason = err.strerror or (os.strerror(err.errno) if err.errno else str(err))
    return f"{names}: {reason}"


def _fail(message: str, silent: bool = False) -> None:
    """`error: ...` on stderr and exit status 1; `silent` where another process (DDP rank 0) prints the line."""
    if not silent:
        print(f"error: {printable(message)}", file=sys.stderr)
    sys.exit(1)

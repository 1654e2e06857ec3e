"""What the top-level scripts share: bad input becomes one clear line on stderr and a non-zero exit."""
from __future__ import annotations

import logging
import sys
import warnings
from typing import Callable

from clmr.audio import AudioFileError
from clmr.config import ConfigError
from clmr.datasets.dataset import DatasetError

USER_ERRORS = (AudioFileError, ConfigError, DatasetError, FileNotFoundError)


def quiet_libraries() -> None:
    """Keep Lightning's and PyTorch's advice off the console; our own warnings stay."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def run(main: Callable[[], object]) -> None:
    """Run a script's main(); a user error prints `error: ...` and exits with status 1."""
    quiet_libraries()
    try:
        main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

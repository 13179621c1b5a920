"""``python -m asrpool_operator``: the same flags as ``asrpool operator``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .options import add_operator_options, run_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asrpool_operator", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("ASRPOOL_LOG_LEVEL", "INFO"))
    add_operator_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())

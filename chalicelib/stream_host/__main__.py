"""`python -m chalicelib.stream_host [--port N]`: serve the streaming function's app (run.sh, make run)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from chalicelib.stream_host import server


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # The adapter's traffic port: AWS_LWA_PORT, else PORT, else 8080 (its documented default).
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("AWS_LWA_PORT") or os.environ.get("PORT") or 8080))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server.warm()
    server.serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

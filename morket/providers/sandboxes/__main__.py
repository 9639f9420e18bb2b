"""``python -m morket.providers.sandboxes --port 8900``: serve every provider sandbox until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from morket.providers.sandboxes import serve


def main(argv: list[str] | None = None) -> int:
    """Serve the sandboxes; SIGTERM and Ctrl-C stop the server cleanly."""
    parser = argparse.ArgumentParser(prog="python -m morket.providers.sandboxes", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--access-log", action="store_true", help="print one line per request")
    args = parser.parse_args(argv)
    server = serve(args.host, args.port, quiet=not args.access_log)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    base = f"http://{args.host}:{server.server_port}"
    print(
        f"[sandbox] providers at {base}/hunter, {base}/apollo, {base}/clearbit (keys: sandbox-...); CRMs at "
        f"{base}/hubspot, {base}/salesforce (OAuth clients: sandbox-...); Stripe (test mode) at {base}/stripe "
        f"(keys: sk_test_...); LLMs at {base}/openai/v1 and {base}/anthropic, web search at {base}/websearch "
        "(keys: sandbox-...)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

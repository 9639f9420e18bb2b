"""The scrape browser's egress boundary: a proxy process that every browser connection goes through.

Chromium is launched with this proxy for every scheme and no bypass (``<-loopback>`` removes the
loopback bypass Chromium otherwise adds), with a host resolver that resolves nothing itself, and
WebRTC limited to proxied connections. Whatever opens a connection — a page, a dedicated,
shared or service worker, a WebSocket, a preconnect, a popup — can only ask the proxy, and the
proxy (``egress_plugin.EgressPlugin``, on proxy.py) resolves the destination once, checks every
address with the request guard's rules and connects to the address it checked.

``EgressProxy`` starts that proxy as a child process on a free loopback port
(``python -m morket.scraping.egress``), reads the refusals it reports, and stops it. The child
watches the process that started it and exits when it is gone, so a killed worker leaves no
proxy behind. A deployment may instead name an external egress proxy (``SCRAPE_EGRESS_PROXY``,
Smokescreen for one); then nothing is started here and refusals are the other proxy's to log.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import BinaryIO
from urllib.parse import urlsplit

log = logging.getLogger("morket.scraping")

START_TIMEOUT = 15.0
# Seconds of silence after which the proxy drops a connection: longer than any page may take.
IDLE_TIMEOUT = 120


class EgressError(RuntimeError):
    """The egress proxy could not be started."""


class EgressProxy:
    """One egress proxy process on a free loopback port; not thread-safe (the pool's thread runs it)."""

    def __init__(self, allowlist: Iterable[str] = (), host_rules: str = "", upstream: str = "") -> None:
        self.allowlist = tuple(allowlist)
        self.host_rules = host_rules
        self.upstream = upstream
        self.port = 0
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._refusals: list[tuple[str, int, str]] = []
        self._changed = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EgressProxy:
        """Start the proxy and wait until it listens; raise EgressError when it does not."""
        self.stop()
        read_fd, write_fd = os.pipe()
        command = [
            sys.executable,
            "-m",
            "morket.scraping.egress",
            "--parent-pid",
            str(os.getpid()),
            "--report-fd",
            str(write_fd),
            "--allowlist",
            ",".join(self.allowlist),
            "--host-rules",
            self.host_rules,
            "--upstream",
            self.upstream,
        ]
        try:
            # Its own session, so stopping it takes its acceptor processes too (one process group).
            self._process = subprocess.Popen(command, pass_fds=(write_fd,), start_new_session=True)  # noqa: S603 - our own module
        finally:
            os.close(write_fd)
        reports = os.fdopen(read_fd, "rb")
        ready, _, _ = select.select([reports], [], [], START_TIMEOUT)
        first = reports.readline() if ready else b""
        try:
            self.port = int(json.loads(first)["ready"])
        except (ValueError, KeyError, TypeError):
            reports.close()
            self.stop()
            raise EgressError("The scrape browser's egress proxy did not start.") from None
        self._refusals = []
        self._reader = threading.Thread(target=self._read, args=(reports,), name="egress-reports", daemon=True)
        self._reader.start()
        atexit.register(self.stop)
        log.info("egress proxy started", extra={"data": {"port": self.port}})
        return self

    def _read(self, reports: BinaryIO) -> None:
        with reports:
            for line in reports:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    message = json.loads(line)
                    host, port = message["refused"]
                    with self._changed:
                        self._refusals.append((str(host), int(port), str(message["reason"])))
                        del self._refusals[:-1000]
                        self._changed.notify_all()

    def mark(self) -> int:
        """A position in the refusal record: pass it to ``refusal`` to see only what came after."""
        with self._changed:
            return len(self._refusals)

    def refusal(self, host: str, port: int, since: int = 0, wait: float = 0.0) -> str | None:
        """Why the proxy refused host:port after ``since``, or None; wait up to ``wait`` seconds for it."""
        deadline = time.monotonic() + wait
        host = host.strip("[]").lower()
        with self._changed:
            while True:
                for h, p, reason in self._refusals[since:]:
                    if (h, p) == (host, port):
                        return reason
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def stop(self) -> None:
        """Stop the proxy and its acceptor processes (safe to call when it is not running)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        atexit.unregister(self.stop)


def chromium_proxy_args(proxy_url: str) -> list[str]:
    """Chromium flags that send every connection through ``proxy_url`` and nowhere else.

    No bypass at all (``<-loopback>`` undoes Chromium's implicit loopback bypass); the browser's
    own resolver maps every name to nothing, so it cannot resolve (or leak) a name itself — only
    the proxy's host is excluded when it is a name; WebRTC may not use UDP that skips the proxy."""
    host = urlsplit(proxy_url).hostname or "127.0.0.1"
    return [
        f"--proxy-server={proxy_url}",
        "--proxy-bypass-list=<-loopback>",
        f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {host}",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    ]


def main(argv: list[str] | None = None) -> None:
    """Run the egress proxy until the process that started it exits (``python -m morket.scraping.egress``)."""
    parser = argparse.ArgumentParser(description="Morket's egress proxy for the scrape browser")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--report-fd", type=int, default=-1)
    parser.add_argument("--allowlist", default="")
    parser.add_argument("--host-rules", default="")
    parser.add_argument("--upstream", default="", help="an upstream proxy that allowed connections go through")
    parser.add_argument("--log-level", default="ERROR")
    args = parser.parse_args(argv)

    import proxy

    from morket.scraping.egress_plugin import report

    plugins = "morket.scraping.egress_plugin.EgressPlugin"
    if args.upstream:
        # After the check, proxy.py's pool plugin forwards the connection to the upstream proxy.
        plugins += ",proxy.plugin.ProxyPoolPlugin"
    flags = [
        "--hostname",
        "127.0.0.1",
        "--port",
        "0",
        "--threaded",
        "--num-acceptors",
        "1",
        "--timeout",
        str(IDLE_TIMEOUT),
        "--log-level",
        args.log_level,
        "--plugins",
        plugins,
        "--morket-allowlist",
        args.allowlist,
        "--morket-host-rules",
        args.host_rules,
        "--morket-report-fd",
        str(args.report_fd),
        *(["--proxy-pool", args.upstream] if args.upstream else []),
    ]
    with proxy.Proxy(flags) as running:
        report(args.report_fd, {"ready": running.flags.port})
        while os.getppid() == args.parent_pid:
            time.sleep(0.5)


if __name__ == "__main__":
    main()

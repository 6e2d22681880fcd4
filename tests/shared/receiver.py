"""A real webhook receiver for the tests: an HTTP endpoint on 127.0.0.1 in a thread of its own that
records every request and can fail on purpose, and the consumer's view of it (each event id once)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def envelope(self) -> dict[str, Any]:
        envelope: dict[str, Any] = json.loads(self.body)
        return envelope


class _Server(ThreadingHTTPServer):
    # The dispatcher sends a whole batch at once; socketserver's default backlog of 5 refuses some of
    # those connections, which then count as failed attempts.
    request_queue_size = 128


class Receiver:
    """An HTTP endpoint on 127.0.0.1 and a random port (a thread of its own): it records every request,
    answers 500 to the first `fail_first` ones (`fail_always` for all) and 204 to the others."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.fail_first = 0
        self.fail_always = False
        self.delay = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                time.sleep(receiver.delay)
                with receiver._lock:
                    failing = receiver.fail_always or receiver.fail_first > 0
                    receiver.fail_first -= 1 if receiver.fail_first > 0 else 0
                    status = 500 if failing else 204
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append(Received(self.path, headers, body, status))
                with contextlib.suppress(OSError):  # the sender may have given up (timeout)
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/loyalty"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.status < 300]

    def event_ids(self) -> list[str]:
        """What an idempotent consumer processes: each `webhook-id` once, in arrival order."""
        return list(dict.fromkeys(r.headers["webhook-id"] for r in self.accepted()))

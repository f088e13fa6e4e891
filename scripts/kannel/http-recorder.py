#!/usr/bin/env python3
"""Tiny HTTP listener for the Kannel experiments: logs every request line
("METHOD PATH?QUERY") to stdout, flushed, and answers STATUS (200) with BODY.

    http-recorder.py PORT [BODY] [STATUS]
"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(sys.argv[1])
BODY = (sys.argv[2] if len(sys.argv) > 2 else "").encode()
STATUS = int(sys.argv[3]) if len(sys.argv) > 3 else 200


class H(BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        print(f"{self.command} {self.path}", flush=True)
        for k in ("User-Agent", "Content-Type", "X-Kannel-From", "X-Kannel-To"):
            if self.headers.get(k):
                print(f"  {k}: {self.headers.get(k)}", flush=True)
        if data:
            print(f"  body: {data!r}", flush=True)
        self.send_response(STATUS)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = _answer

    def log_message(self, *a):
        pass


HTTPServer(("127.0.0.1", PORT), H).serve_forever()

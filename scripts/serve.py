#!/usr/bin/env python3
"""Serves www/ on 127.0.0.1 with the headers the page needs.

Cross-origin isolation (COOP same-origin + COEP require-corp) lets the page use
SharedArrayBuffer, which the multi-threaded CPU build needs for its wasm threads. A static
host must send the same two headers for threads; without them the page falls back to the
single-threaded build and says so. A Content-Security-Policy allows only the page's own
origin, so nothing the user drops can be sent anywhere.

    python3 scripts/serve.py [--port 8000] [--dir www] [--quiet]
"""
import argparse
import functools
import http.server


# Only the page's own origin: scripts, workers, wasm (compiled from its own files), fetches.
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    # wasm-bindgen-rayon starts its pool from a blob: URL made by the page's own script.
    "worker-src 'self' blob:",
    "connect-src 'self'",
    "img-src 'self' blob: data:",
    "style-src 'self' 'unsafe-inline'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".kiln": "application/octet-stream",
    }
    quiet = False

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Content-Security-Policy", CSP)
        # The page is rebuilt in place; never serve a stale wasm next to new JS.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, fmt, *args):
        if not self.quiet:
            super().log_message(fmt, *args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--dir", default="www")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    Handler.quiet = a.quiet
    handler = functools.partial(Handler, directory=a.dir)
    with http.server.ThreadingHTTPServer((a.bind, a.port), handler) as httpd:
        httpd.serve_forever()


if __name__ == "__main__":
    main()

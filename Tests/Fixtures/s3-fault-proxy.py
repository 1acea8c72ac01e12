#!/usr/bin/env python3
"""A pass-through HTTP proxy in front of an S3 endpoint that can be told to fail.

    s3-fault-proxy.py LISTEN_PORT UPSTREAM_PORT [--tls CERT KEY] [--idle SECONDS] [--chunked]

Requests go to 127.0.0.1:UPSTREAM_PORT unchanged (the Host header too, so signatures still
verify). `POST /__fault?mode=500|drop&count=N&match=TEXT` makes the next N requests whose
method + path + query contain TEXT fail: `500` answers an S3 InternalError, `drop` reads part of
the request body and closes the connection without an answer. `GET /__fault` reports how many
faults were injected so far, how many connections carried requests to proxy, and how many of
those are open. `--idle` closes a connection left idle that long between requests, as stores do
(a request in progress, however slowly its answer is read, is not cut); `--chunked` answers
GETs in chunks, without a Content-Length, as some gateways do. Prints `listening` once it accepts connections.
"""
import http.client
import http.server
import socket
import sys
import threading
import urllib.parse

LISTEN, UPSTREAM = int(sys.argv[1]), int(sys.argv[2])
state = {"mode": None, "count": 0, "match": "", "injected": 0, "connections": 0, "open": 0}
lock = threading.Lock()


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = float(sys.argv[sys.argv.index("--idle") + 1]) if "--idle" in sys.argv else None

    def finish(self):
        if getattr(self, "counted", False):
            with lock:
                state["open"] -= 1
        super().finish()

    def log_message(self, *args):
        pass

    def control(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if self.command == "POST":
            with lock:
                state["mode"] = query.get("mode", [None])[0]
                state["count"] = int(query.get("count", ["1"])[0])
                state["match"] = query.get("match", [""])[0]
        body = ("injected=%d remaining=%d connections=%d open=%d\n" % (state["injected"], state["count"], state["connections"], state["open"])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fault(self):
        with lock:
            if state["count"] > 0 and state["match"] in self.command + " " + self.path:
                state["count"] -= 1
                state["injected"] += 1
                return state["mode"]
        return None

    def handle_any(self):
        # The idle timeout (`timeout`, set on the socket) is for waiting for the next request only:
        # a client reading a large answer slowly is not idle.
        self.connection.settimeout(None)
        try:
            self.proxy()
        finally:
            self.connection.settimeout(self.timeout)

    def proxy(self):
        if self.path.startswith("/__fault"):
            return self.control()
        if not getattr(self, "counted", False):  # one handler per connection: count those that proxy
            self.counted = True
            with lock:
                state["connections"] += 1
                state["open"] += 1
        length = int(self.headers.get("Content-Length") or 0)
        mode = self.fault()
        if mode == "drop":
            self.rfile.read(min(length, 65536))
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        body = self.rfile.read(length) if length else b""
        if mode == "500":
            text = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>injected by the test</Message></Error>"
            self.send_response(500)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "transfer-encoding")}
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            upstream.putheader(k, v)
        upstream.endheaders(body if body else None)
        response = upstream.getresponse()
        data = response.read()
        self.send_response_only(response.status, response.reason)
        for k, v in response.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                self.send_header(k, v)
        if "--chunked" in sys.argv and self.command == "GET":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(data), 1 << 20):
                piece = data[start:start + (1 << 20)]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            upstream.close()
            return
        # A HEAD answer tells the object's length without sending it.
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy)
server.daemon_threads = True
if "--tls" in sys.argv:  # https on LISTEN_PORT with CERT and KEY (PEM); plain HTTP upstream
    import ssl
    at = sys.argv.index("--tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[at + 1], sys.argv[at + 2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()

import http.server, json, os, sys, time
RESET = int(os.environ.get("RESET", str(int(time.time()) + 3600)))
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); self.rfile.read(n)
        sys.stderr.write(f"{self.command} {self.path}\n"); sys.stderr.flush()
        body = json.dumps({"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
               "plan_type": "plus", "resets_at": RESET, "resets_in_seconds": RESET - int(time.time())}}).encode()
        self.send_response(429)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self.send_response(404); self.send_header("content-length","0"); self.end_headers()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()

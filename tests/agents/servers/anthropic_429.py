# A loopback stand-in for the Anthropic Messages API: answers every request
# with a 429 carrying the unified rate-limit headers of a plan usage cap
# (MODE=cap) or a plain rate limit (MODE=rate).
import http.server, json, os, sys, time
MODE = os.environ.get("MODE", "cap")
RESET = int(os.environ.get("RESET", str(int(time.time()) + 3600)))
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); self.rfile.read(n)
        sys.stderr.write(f"POST {self.path}\n"); sys.stderr.flush()
        body = json.dumps({"type": "error", "error": {"type": "rate_limit_error",
               "message": "This request would exceed your account's rate limit. Please try again later."}}).encode()
        self.send_response(429)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", "req_standin")
        if MODE == "cap":
            self.send_header("anthropic-ratelimit-unified-status", "rejected")
            self.send_header("anthropic-ratelimit-unified-reset", str(RESET))
            self.send_header("anthropic-ratelimit-unified-representative-claim", "five_hour")
            self.send_header("anthropic-ratelimit-unified-overage-status", "rejected")
            self.send_header("anthropic-ratelimit-unified-overage-disabled-reason", "out_of_credits")
        else:
            self.send_header("retry-after", "1")
        self.send_header("content-length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    do_GET = do_POST
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()

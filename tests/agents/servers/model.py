# A loopback stand-in for the model behind the real agent CLIs (the
# real-CLI test tier, tests/real_cli.rs). It speaks enough of the Anthropic
# Messages API (Claude Code), the OpenAI Responses API (Codex), Chat
# Completions (aider, opencode) and Gemini's generateContent (Gemini CLI)
# for one tool call that writes a file, then a final answer (aider, which
# calls no tools, gets an edit in its "whole" format); or it fails the way
# the providers do.
#
#   python3 model.py PORT        prints "ready PORT" once it listens (PORT 0:
#                                a free one)
#
# The mode is the first `stand-in: <mode>` in the request (the story's
# text reaches the model in the prompt), else MODE, else ok:
#   ok     a shell tool call `echo ... > notes.txt`, then "STANDIN FINAL: ..."
#          (to a judge of attempts, Anthropic only: "CHOSEN: 1" and a reason)
#   401    authentication error
#   429    rate limit (retry-after: 1)
#   cap    Anthropic: a plan's usage cap (unified rate-limit headers);
#          OpenAI: usage_limit_reached with resets_at
#   500    server error
#   hang   accepts and never answers
# Every request is logged to stderr as `<METHOD> <path> <mode>`.
import http.server, json, os, re, sys, time

DEFAULT = os.environ.get("MODE", "ok")
RESET = int(time.time()) + 3600
FILE_LINE = "echo 'hello from the stand-in model' > notes.txt"
FINAL = "STANDIN FINAL: created notes.txt"
# What a judge of a story's attempts (its prompt asks for `CHOSEN: <number>`)
# answers: no tool call, a choice and a reason.
JUDGE = "Both attempts write the notes; the first is as good as any.\nCHOSEN: 1\nIt writes notes.txt as the story asks."


def mode_of(text):
    m = re.search(r"stand-in: ([a-z0-9]+)", text)
    return m.group(1) if m else DEFAULT


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def body(self):
        n = int(self.headers.get("content-length", 0) or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return raw.decode("utf-8", "replace"), json.loads(raw or b"{}")
        except ValueError:
            return raw.decode("utf-8", "replace"), {}

    def send_json(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", "req_standin")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def sse(self, events):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for name, obj in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def fail(self, mode, openai):
        if "generatecontent" in self.path.lower() and mode in ("401", "429", "cap", "500"):
            code = {"401": 401, "429": 429, "cap": 429, "500": 500}[mode]
            status = {401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}[code]
            message = {"401": "API key not valid. Please pass a valid API key.",
                       "429": "Resource has been exhausted (e.g. check quota).",
                       "cap": "You exceeded your current quota, please check your plan and billing details. Quota exceeded for metric: generate_content_free_tier_requests, limit: 0, model: standin",
                       "500": "Internal error encountered."}[mode]
            self.send_json(code, {"error": {"code": code, "message": message, "status": status}})
            return True
        if mode == "hang":
            time.sleep(3600)
            return True
        if mode == "401":
            if openai:
                self.send_json(401, {"error": {"message": "Incorrect API key provided: stand-in.", "type": "invalid_request_error", "code": "invalid_api_key"}})
            else:
                self.send_json(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
            return True
        if mode == "429":
            if openai:
                self.send_json(429, {"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}, [("retry-after", "1")])
            else:
                self.send_json(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "This request would exceed your account's rate limit. Please try again later."}}, [("retry-after", "1")])
            return True
        if mode == "cap":
            if openai:
                self.send_json(429, {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached", "plan_type": "plus", "resets_at": RESET}})
            else:
                self.send_json(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "This request would exceed your account's rate limit. Please try again later."}},
                               [("anthropic-ratelimit-unified-status", "rejected"), ("anthropic-ratelimit-unified-reset", str(RESET)),
                                ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
                                ("anthropic-ratelimit-unified-overage-status", "rejected"),
                                ("anthropic-ratelimit-unified-overage-disabled-reason", "out_of_credits")])
            return True
        if mode == "500":
            if openai:
                self.send_json(500, {"error": {"message": "The server had an error processing your request.", "type": "server_error"}})
            else:
                self.send_json(500, {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}})
            return True
        return False

    def do_GET(self):
        sys.stderr.write(f"GET {self.path}\n")
        sys.stderr.flush()
        if "/models" in self.path:
            self.send_json(200, {"object": "list", "data": [{"id": "standin", "object": "model"}], "models": []})
        else:
            self.send_json(404, {"error": {"message": "not here"}})

    def do_POST(self):
        text, req = self.body()
        openai = "/responses" in self.path or "/chat/completions" in self.path or "generatecontent" in self.path.lower()
        mode = mode_of(text)
        sys.stderr.write(f"POST {self.path} {mode}\n")
        sys.stderr.flush()
        if os.environ.get("DUMP"):
            with open(os.environ["DUMP"], "a") as f:
                f.write(text + "\n")
        if self.path.startswith("/v1/messages/count_tokens"):
            return self.send_json(200, {"input_tokens": 1000})
        if self.fail(mode, openai):
            return
        if self.path.startswith("/v1/messages"):
            return self.anthropic(text, req)
        if "/responses" in self.path:
            return self.openai_responses(text, req)
        if "/chat/completions" in self.path:
            return self.chat(text, req)
        if "generatecontent" in self.path.lower():
            return self.gemini(text, req, "streamgeneratecontent" in self.path.lower())
        self.send_json(404, {"error": {"message": f"no {self.path} here"}})

    # ---- Anthropic Messages -------------------------------------------
    def anthropic(self, text, req):
        tools = [t.get("name") for t in req.get("tools") or []]
        done = "tool_result" in text
        judge = "CHOSEN: <number>" in text
        if "Bash" in tools and not done and not judge:
            block = {"type": "tool_use", "id": "toolu_standin1", "name": "Bash", "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps({"command": FILE_LINE, "description": "Write notes.txt"})}
            stop = "tool_use"
        else:
            block = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": JUDGE if judge else FINAL if "Bash" in tools else "Stand-in"}
            stop = "end_turn"
        msg = {"id": "msg_standin", "type": "message", "role": "assistant", "model": req.get("model", "standin"),
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 1200, "output_tokens": 1, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}}
        if not req.get("stream"):
            final = dict(block)
            if block["type"] == "text":
                final["text"] = delta["text"]
            else:
                final["input"] = json.loads(delta["partial_json"])
            msg.update(content=[final], stop_reason=stop, usage={"input_tokens": 1200, "output_tokens": 60})
            return self.send_json(200, msg)
        self.sse([
            ("message_start", {"type": "message_start", "message": msg}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 60}}),
            ("message_stop", {"type": "message_stop"}),
        ])

    # ---- OpenAI Responses ---------------------------------------------
    def openai_responses(self, text, req):
        items = req.get("input") or []
        done = any(isinstance(i, dict) and i.get("type", "").endswith("_output") for i in items)
        tools = [t.get("name") or t.get("type") for t in req.get("tools") or []]
        sys.stderr.write(f"  tools {tools}\n")
        rid = "resp_standin"
        if not done and "additional_tools" in text and '"exec"' in text:
            # Codex 0.171: its tools are driven from JavaScript in `exec`.
            js = "await tools.exec_command({cmd: %s});" % json.dumps(FILE_LINE)
            item = {"type": "custom_tool_call", "id": "ctc_standin1", "call_id": "call_standin1", "name": "exec", "input": js, "status": "completed"}
        elif not done:
            name, args = self.shell_call(tools)
            item = {"type": "function_call", "id": "fc_standin1", "call_id": "call_standin1", "name": name, "arguments": args, "status": "completed"}
        else:
            item = {"type": "message", "id": "msg_standin1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": FINAL, "annotations": []}]}
        usage = {"input_tokens": 1234, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 56,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1290}
        resp = {"id": rid, "object": "response", "status": "in_progress", "model": req.get("model", "standin"), "output": []}
        done_resp = dict(resp, status="completed", output=[item], usage=usage)
        self.sse([
            ("response.created", {"type": "response.created", "response": resp}),
            ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": item}),
            ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
            ("response.completed", {"type": "response.completed", "response": done_resp}),
        ])

    # ---- OpenAI Chat Completions (aider through litellm; opencode) ---
    def chat(self, text, req):
        tools = [((t.get("function") or {}).get("name")) for t in req.get("tools") or []]
        msgs = req.get("messages") or []
        done = any(m.get("role") == "tool" for m in msgs)
        shell = next((n for n in ("bash", "shell", "run_shell_command") if n in tools), None)
        usage = {"prompt_tokens": 1500, "completion_tokens": 70, "total_tokens": 1570}
        if shell and not done:
            delta = {"role": "assistant", "content": None, "tool_calls": [{"index": 0, "id": "call_standin1", "type": "function",
                     "function": {"name": shell, "arguments": json.dumps({"command": FILE_LINE, "description": "Write notes.txt"})}}]}
            finish = "tool_calls"
        elif tools:
            delta = {"role": "assistant", "content": FINAL}
            finish = "stop"
        else:
            # No tools (aider): an edit in its "whole" format.
            delta = {"role": "assistant", "content": "notes.txt\n```\nhello from the stand-in model\n```\n\n" + FINAL}
            finish = "stop"
        base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": int(time.time()), "model": req.get("model", "standin")}
        if not req.get("stream"):
            msg = dict(delta)
            return self.send_json(200, dict(base, object="chat.completion", choices=[{"index": 0, "message": msg, "finish_reason": finish}], usage=usage))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for chunk in (dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}]),
                      dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": finish}]),
                      dict(base, choices=[], usage=usage)):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    # ---- Gemini generateContent ---------------------------------------
    def gemini(self, text, req, stream):
        decls = [d.get("name") for t in req.get("tools") or [] for d in t.get("functionDeclarations") or []]
        done = "functionResponse" in text
        if "run_shell_command" in decls and not done:
            part = {"functionCall": {"name": "run_shell_command", "args": {"command": FILE_LINE, "description": "Write notes.txt"}}}
        elif decls:
            part = {"text": FINAL}
        else:
            # A utility request (the model router): a plain answer.
            part = {"text": json.dumps({"reasoning": "stand-in", "model_choice": "flash"})}
        resp = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 1800, "candidatesTokenCount": 80, "totalTokenCount": 1880},
                "modelVersion": "standin"}
        if not stream:
            return self.send_json(200, resp)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(f"data: {json.dumps(resp)}\r\n\r\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def shell_call(self, tools):
        for name in ("shell_command", "shell", "exec_command"):
            if name in tools:
                if name == "shell":
                    return name, json.dumps({"command": ["bash", "-lc", FILE_LINE]})
                if name == "exec_command":
                    return name, json.dumps({"cmd": FILE_LINE})
                return name, json.dumps({"command": FILE_LINE})
        return "shell", json.dumps({"command": ["bash", "-lc", FILE_LINE]})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


s = Server(("127.0.0.1", int(sys.argv[1])), H)
print(f"ready {s.server_address[1]}", flush=True)
s.serve_forever()

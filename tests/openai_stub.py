#!/usr/bin/env python3
"""openai_stub — a small OpenAI-compatible chat server for tests (stdlib only).

    python3 tests/openai_stub.py [--port N] [--port-file PATH]

Listens on 127.0.0.1 (port 0 = a free one; the port actually bound is written
to --port-file, then "listening PORT" goes to stdout).  Answers
POST /v1/chat/completions (and /chat/completions) deterministically:

    text               "echo: " + the content of the last "user" message
    prompt_tokens      the number of whitespace-separated words in all messages
    completion_tokens  the number of words in the text

What to do is chosen by the request's "model": a list of directives separated
by "+", and an optional "~tag" that only names the counter (each distinct
model string counts its own requests, so tests do not disturb each other;
"~" rather than "#", which starts a comment in config files):

    echo              the normal answer (also any unknown model name)
    429:N:RA          the first N requests get 429 with "Retry-After: RA"
                      (RA "date<S>" = an HTTP date S seconds from now)
    429ms:N:MS        the first N requests get 429 with "retry-after-ms: MS"
    500:N  503:N      the first N requests get that status ("inf" = always)
    status:CODE       always that status with an OpenAI error body
    ctx               400 with code "context_length_exceeded"
    ctx500            500 "Context size has been exceeded." (some llama.cpp versions)
    latin1            400 with a text/plain Latin-1 body (not UTF-8)
    slow:MS           wait MS before answering (streams: before each chunk)
    badjson           200 with a body that is not JSON
    nousage           no "usage" in the reply (and none in a stream)
    error200          200 with {"error": {...}} and no choices
    nullcontent       200 with message.content null
    drop              close the connection without an answer
    big:N             the text is N 'x' characters
    whoami            the text is the Authorization header ("none" if absent)
    nostream          answer with one JSON reply even when a stream is asked for
    streambad         a stream whose second chunk is not JSON
    streamcut         a stream that ends without finish_reason and [DONE]
    skills            a skill analysis (skill-inference's llm mode): of the ids
                      the system message lists as lines "- ID: ...", the first
                      gets weight 0.7 and the second 0.3 (one id: 1.0), as
                      {"skills": [{"id": ..., "weight": ...}]}.  Markers in
                      the last user message override this per request:
                        <<reply:TEXT>>   answer TEXT verbatim (any output:
                                         malformed, fenced, <think> blocks)
                        <<sleep:MS>>     wait MS first
                        <<status:CODE>>  answer that HTTP status instead
    name              a skill name (so-name): for "Skill id: ID" in the last
                      user message, a ```json fenced {"name": "Named ID",
                      "description": "Requests that need ID."}
    name:K            as name, but every K-th request answers prose (no JSON)

With "stream": true the echo text is sent as SSE chat.completion.chunk
events, one per word, then (with stream_options.include_usage) a usage
chunk, then "data: [DONE]".  Connections are kept alive (HTTP/1.1).

Control endpoints:
    GET  /control/stats   {"requests": {model: n}, "connections": {model: n},
                           "last": {model: request body}}
    POST /control/reset   forgets every counter
"""
import argparse
import email.utils
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
REQUESTS = {}       # model -> requests seen
CONNECTIONS = {}    # model -> set of client (host, port)
LAST = {}           # model -> last request body


def directives(model):
    """[(name, [args])] from "429:2:1+slow:100~tag"."""
    spec = model.split("~", 1)[0]
    out = []
    for part in spec.split("+"):
        bits = part.split(":")
        if bits[0]:
            out.append((bits[0], bits[1:]))
    return out


def first_n(arg, n_seen):
    """True while this request is among the first N ("inf": always)."""
    if arg == "inf":
        return True
    try:
        return n_seen <= int(arg)
    except ValueError:
        return False


def words(s):
    return len(s.split())


def last_content(messages, role):
    out = ""
    for m in messages:
        if isinstance(m, dict) and m.get("role") == role:
            out = str(m.get("content", ""))
    return out


def skills_text(messages):
    """The "skills" answer: a marker's text, or an analysis of the listed ids."""
    user = last_content(messages, "user")
    m = re.search(r"<<reply:(.*?)>>", user, re.S)
    if m:
        return m.group(1)
    ids = re.findall(r"^- (\S+): ", last_content(messages, "system"), re.M)
    weights = [0.7, 0.3] if len(ids) > 1 else [1.0]
    return json.dumps({"skills": [{"id": i, "weight": w} for i, w in zip(ids, weights)]})


def name_text(messages, every, n):
    """The "name" answer for the skill the last user message names."""
    if every and n % every == 0:
        return "I would call this skill something about words, but I am not sure."
    m = re.search(r"^Skill id: (\S+)", last_content(messages, "user"), re.M)
    sid = m.group(1) if m else "unknown"
    body = json.dumps({"name": "Named " + sid, "description": "Requests that need %s." % sid})
    return "Here is my answer:\n```json\n%s\n```" % body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai-stub/1"
    # Headers and body go out in separate writes: without TCP_NODELAY the
    # body waits for the client's delayed ACK (~40 ms) on kept-alive
    # connections, which would swamp latency measurements.
    disable_nagle_algorithm = True

    def handle(self):
        # A client that gave up (a timeout under test) is not an error here.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, fmt, *args):  # quiet unless asked
        if os.environ.get("OPENAI_STUB_LOG"):
            sys.stderr.write("stub: " + (fmt % args) + "\n")

    # ---- plumbing -------------------------------------------------------
    def send_json(self, status, obj, headers=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status, message, etype="stub_error", code=None, headers=None):
        self.send_json(status, {"error": {"message": message, "type": etype, "code": code}},
                       headers)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def sse(self, obj):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.chunk(b"data: " + data + b"\n\n")

    # ---- endpoints ------------------------------------------------------
    def do_GET(self):
        if self.path == "/control/stats":
            with LOCK:
                stats = {"requests": dict(REQUESTS),
                         "connections": {m: len(c) for m, c in CONNECTIONS.items()},
                         "last": dict(LAST)}
            self.send_json(200, stats)
        else:
            self.send_error_json(404, "no such endpoint: GET " + self.path)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if self.path == "/control/reset":
            with LOCK:
                REQUESTS.clear()
                CONNECTIONS.clear()
                LAST.clear()
            self.send_json(200, {"ok": True})
            return
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            self.send_error_json(404, "no such endpoint: POST " + self.path)
            return
        try:
            req = json.loads(raw)
            model = req["model"]
            messages = req["messages"]
            if not isinstance(model, str) or not isinstance(messages, list) or not messages:
                raise ValueError("model must be a string and messages a non-empty list")
        except (ValueError, KeyError, TypeError) as e:
            self.send_error_json(400, "bad request body: %s" % e, "invalid_request_error")
            return
        with LOCK:
            n = REQUESTS[model] = REQUESTS.get(model, 0) + 1
            CONNECTIONS.setdefault(model, set()).add(self.client_address)
            LAST[model] = req
        self.answer(req, model, messages, n)

    def answer(self, req, model, messages, n):
        d = directives(model)
        names = [x[0] for x in d]
        stream = bool(req.get("stream")) and "nostream" not in names
        delay = 0.0
        text = None
        for name, args in d:
            if name == "429" and len(args) == 2 and first_n(args[0], n):
                ra = args[1]
                if ra.startswith("date"):
                    ra = email.utils.formatdate(time.time() + float(ra[4:]), usegmt=True)
                self.send_error_json(429, "rate limited by the stub", "rate_limit_error",
                                     headers={"Retry-After": ra})
                return
            if name == "429ms" and len(args) == 2 and first_n(args[0], n):
                self.send_error_json(429, "rate limited by the stub", "rate_limit_error",
                                     headers={"retry-after-ms": args[1]})
                return
            if name in ("500", "503") and args and first_n(args[0], n):
                self.send_error_json(int(name), "stub server error %s" % name, "server_error")
                return
            if name == "status" and args:
                self.send_error_json(int(args[0]), "stub status %s" % args[0])
                return
            if name == "ctx":
                self.send_error_json(400, "This model's maximum context length is 8 tokens",
                                     "invalid_request_error", "context_length_exceeded")
                return
            if name == "ctx500":
                self.send_error_json(500, "Context size has been exceeded.", "server_error")
                return
            if name == "latin1":
                body = "Requ\xeate refus\xe9e".encode("latin-1")
                self.send_response(400)
                self.send_header("Content-Type", "text/plain; charset=latin-1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if name == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if name == "slow" and args:
                delay = int(args[0]) / 1000.0
            if name == "big" and args:
                text = "x" * int(args[0])
            if name == "whoami":
                text = self.headers.get("Authorization") or "none"
            if name == "skills":
                user = last_content(messages, "user")
                m = re.search(r"<<sleep:(\d+)>>", user)
                if m:
                    delay = int(m.group(1)) / 1000.0
                m = re.search(r"<<status:(\d+)>>", user)
                if m:
                    self.send_error_json(int(m.group(1)), "stub status %s" % m.group(1))
                    return
                text = skills_text(messages)
            if name == "name":
                every = int(args[0]) if args and args[0].isdigit() else 0
                text = name_text(messages, every, n)
        if text is None:
            last_user = ""
            for m in messages:
                if isinstance(m, dict) and m.get("role") == "user":
                    last_user = str(m.get("content", ""))
            text = "echo: " + last_user
        prompt_tokens = sum(words(str(m.get("content", ""))) for m in messages
                            if isinstance(m, dict))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": words(text),
                 "total_tokens": prompt_tokens + words(text)}
        if "nousage" in names:
            usage = None
        if stream:
            self.stream(req, model, text, usage, delay, names)
            return
        if delay:
            time.sleep(delay)
        if "badjson" in names:
            self.send_json(200, None, raw=b'{"id": "x", "choices": [ {"message": ')
            return
        if "error200" in names:
            self.send_json(200, {"error": {"message": "stub error inside a 200 reply"}})
            return
        content = None if "nullcontent" in names else text
        reply = {"id": "chatcmpl-stub-%d" % n, "object": "chat.completion",
                 "created": 1700000000, "model": model,
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content}}]}
        if usage:
            reply["usage"] = usage
        self.send_json(200, reply)

    def stream(self, req, model, text, usage, delay, names):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk",
                "created": 1700000000, "model": model}
        pieces = text.split(" ")
        pieces = [p if i == 0 else " " + p for i, p in enumerate(pieces)]
        self.sse(dict(base, choices=[{"index": 0, "delta": {"role": "assistant"},
                                      "finish_reason": None}]))
        for i, p in enumerate(pieces):
            if delay:
                time.sleep(delay)
            if "streambad" in names and i == 1:
                self.sse(b"{not json")
                continue
            self.sse(dict(base, choices=[{"index": 0, "delta": {"content": p},
                                          "finish_reason": None}]))
        if "streamcut" in names:
            self.chunk(b"")
            return
        self.sse(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        opts = req.get("stream_options") or {}
        if usage and isinstance(opts, dict) and opts.get("include_usage"):
            self.sse(dict(base, choices=[], usage=usage))
        self.sse(b"[DONE]")
        self.chunk(b"")


def main():
    ap = argparse.ArgumentParser(description="OpenAI-compatible test server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)      # readers never see a partial file
    print("listening %d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""A fake OpenAI-compatible server in this process (`vllm serve`'s `/v1/models` and `/v1/completions`)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeServer:
    """`/v1/models` serves `root`; `/v1/completions` answers each prompt's sample j with text
    "p<len(prompt ids)>s<j>" and its token ids, and records every request body."""

    def __init__(self, root: str, token_ids: bool = True) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "teacher", "root": root}]})
                else:
                    self._send(404, {"error": "no such path"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if body["model"] != "teacher":
                    return self._send(400, {"error": "unknown model"})
                choices = []
                for i, ids in enumerate(body["prompt"]):
                    for j in range(body["n"]):
                        k = (j % 3) + 1
                        c = {"index": i * body["n"] + j, "text": f"p{len(ids)}s{j}",
                             "finish_reason": "length" if k == body["max_tokens"] else "stop"}
                        if token_ids:
                            c["token_ids"] = list(range(k))
                        choices.append(c)
                choices.reverse()  # a server may answer in any order; `index` says where each goes
                self._send(200, {"choices": choices, "usage": {"prompt_tokens": sum(map(len, body["prompt"])),
                                                               "completion_tokens": 7}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

"""IMDSv2 stand-in for the spot watch scenario, run on the test node: PUT /latest/api/token (the TTL header is
required) hands out a token; GET /latest/meta-data/spot/instance-action with that token answers 404, or 200 with
the text of /tmp/imds/notice.json while that file exists. Each request is logged to /tmp/imds/requests.log."""

import secrets
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STATE = Path("/tmp/imds")
TOKEN = secrets.token_hex(16)


class Imds(BaseHTTPRequestHandler):
    def answer(self, code: int, body: str = "") -> None:
        with (STATE / "requests.log").open("a") as log:
            log.write(f"{self.command} {self.path} {code}\n")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.answer(400)
        else:
            self.answer(200, TOKEN)

    def do_GET(self) -> None:
        notice = STATE / "notice.json"
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self.answer(401)
        elif self.path != "/latest/meta-data/spot/instance-action" or not notice.exists():
            self.answer(404)
        else:
            self.answer(200, notice.read_text())


if __name__ == "__main__":
    STATE.mkdir(exist_ok=True)
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Imds).serve_forever()

"""A local stand-in for the Hugging Face hub: the few endpoints `hf download` (snapshot_download) of the
huggingface_hub in the node environment calls, serving repos made from local directories or files.

Endpoints: repo info (`/api/{models|datasets}/ID[/revision/REV]`), the file tree (`/api/.../tree/REV`) and the
files (`[datasets/]ID/resolve/REV/PATH`, HEAD and GET, with the ETag / X-Repo-Commit / Content-Length headers the
client checks). An unknown repo answers 404 with `X-Error-Code: RepoNotFound`, as the hub does. Every request is
recorded, so a test can say when the hub was (not) asked. ModelScope's hub speaks another API and is not served.
"""

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

KINDS = {"models": "model", "datasets": "dataset"}
API = re.compile(
    r"^/api/(?P<kind>models|datasets)/(?P<id>[^/]+/[^/]+)(?:/(?P<op>revision|tree)/(?P<rest>.*))?$"
)
RESOLVE = re.compile(r"^/(?:(?P<kind>datasets)/)?(?P<id>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


@dataclass(frozen=True)
class Repo:
    files: dict[str, bytes]

    @classmethod
    def of(cls, source: Path) -> "Repo":
        """A directory's files (recursively), or one file at the repo's root."""
        if source.is_file():
            return cls({source.name: source.read_bytes()})
        return cls(
            {
                p.relative_to(source).as_posix(): p.read_bytes()
                for p in sorted(source.rglob("*"))
                if p.is_file()
            }
        )

    @property
    def commit(self) -> str:
        digest = hashlib.sha1()
        for path, data in sorted(self.files.items()):
            digest.update(path.encode() + b"\0" + _blob_id(data).encode())
        return digest.hexdigest()


def _blob_id(data: bytes) -> str:
    """The git blob id, which the hub reports as a small file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """`with FakeHub.serving(host, {("model", "org/name"): Path(...)}) as hub:` then HF_ENDPOINT=hub.url."""

    def __init__(self, host: str, repos: dict[tuple[str, str], Path]) -> None:
        self.repos = {key: Repo.of(path) for key, path in repos.items()}
        self.requests: list[
            tuple[str, str, str]
        ] = []  # (client address, method, path) in the order they came
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, 0), _handler(self))
        self.url = f"http://{host}:{self.server.server_address[1]}"

    @classmethod
    @contextmanager
    def serving(cls, host: str, repos: dict[tuple[str, str], Path]) -> Iterator["FakeHub"]:
        hub = cls(host, repos)
        thread = threading.Thread(target=hub.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield hub
        finally:
            hub.server.shutdown()
            hub.server.server_close()
            thread.join()

    def record(self, client: str, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((client, method, path))

    def seen(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self.requests)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reads hub.requests instead of stderr

        def do_GET(self) -> None:
            self.answer(body=True)

        def do_HEAD(self) -> None:
            self.answer(body=False)

        def answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.record(self.client_address[0], self.command, path)
            if m := API.match(path):
                repo = hub.repos.get((KINDS[m["kind"]], m["id"]))
                if repo is None:
                    return self.not_found("RepoNotFound", f"Repository {m['id']} not found", body)
                if m["op"] == "tree":
                    rev, _, prefix = m["rest"].partition("/")
                    if rev not in ("main", repo.commit):
                        return self.not_found("RevisionNotFound", f"Invalid rev id: {rev}", body)
                    tree = [
                        {"type": "file", "path": p, "size": len(d), "oid": _blob_id(d)}
                        for p, d in repo.files.items()
                        if p.startswith(prefix)
                    ]
                    return self.send(
                        200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body
                    )
                if m["op"] == "revision" and m["rest"] not in ("main", repo.commit):
                    return self.not_found("RevisionNotFound", f"Invalid rev id: {m['rest']}", body)
                info = {
                    "id": m["id"],
                    "sha": repo.commit,
                    "private": False,
                    "siblings": [{"rfilename": p} for p in repo.files],
                }
                return self.send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
            if m := RESOLVE.match(path):
                repo = hub.repos.get(("dataset" if m["kind"] else "model", m["id"]))
                if repo is None:
                    return self.not_found("RepoNotFound", f"Repository {m['id']} not found", body)
                if m["rev"] not in ("main", repo.commit):
                    return self.not_found("RevisionNotFound", f"Invalid rev id: {m['rev']}", body)
                data = repo.files.get(m["path"])
                if data is None:
                    return self.not_found("EntryNotFound", f"{m['path']} does not exist", body)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "ETag": f'"{_blob_id(data)}"',
                    "X-Repo-Commit": repo.commit,
                }
                return self.send(200, data, headers, body)
            self.not_found("NotFound", f"no such endpoint: {path}", body)

        def not_found(self, code: str, message: str, body: bool) -> None:
            data = json.dumps({"error": message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
            self.send(404, data, headers, body)

        def send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler

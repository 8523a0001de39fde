"""One chat completion against a swiftfleet server, from this machine (the rehearsal's "does it answer" step).

python tests/e2e/chat.py http://172.30.0.10:8000/v1 tiny "alpha beta"     (key from $SWIFT_API_KEY)
"""

import json
import os
import sys
import urllib.request


def chat(base_url: str, model: str, text: str, key: str | None, max_tokens: int = 8) -> dict[str, object]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(f"{base_url}/chat/completions", json.dumps(body).encode(), headers)
    with urllib.request.urlopen(req, timeout=120) as resp:
        answer: dict[str, object] = json.loads(resp.read())
    return answer


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} BASE_URL MODEL TEXT")
    reply = chat(sys.argv[1], sys.argv[2], sys.argv[3], os.environ.get("SWIFT_API_KEY"))
    print(json.dumps(reply.get("choices"), indent=2))

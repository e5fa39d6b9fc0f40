# The smallest client on harness.Client: every check passes.
# Usage: python harness_client.py HOST PORT ACTION VALUE

import sys

from harness import Client, Message

host, port, action, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
request = (
    Message.from_json({"action": action, "value": value})
    if action == "search"
    else Message.from_bytes((action + value).encode())
)
try:
    with Client(host, port, timeout=1.0, max_content_length=1 << 20) as client:
        response = client.request(request)
        print(response.json()["result"] if response.is_json else repr(response.content))
except Exception as exc:  # a script: one line, exit 1
    sys.exit(f"error: {type(exc).__name__}: {exc}")

"""Calls the endpoint named by the app developer secret (a URL kept confidential) and records
what it answered: {"value": n} -> "endpoint hit n times". Standard library only; never prints
the secret."""
import json
import os
import sys
import urllib.request


def main():
    out = os.environ["IEXEC_OUT"]
    try:
        endpoint = os.environ.get("IEXEC_APP_DEVELOPER_SECRET")
        if not endpoint:
            raise ValueError("no app developer secret")
        with urllib.request.urlopen(endpoint, timeout=30) as response:
            value = json.load(response)["value"]
        text = f"endpoint hit {value} times\n"
    except Exception:  # noqa: BLE001 - the reason could contain the secret URL
        print("counter app: the call failed", file=sys.stderr)
        text = "error: the call failed\n"
    result = os.path.join(out, "result.txt")
    with open(result, "w") as f:
        f.write(text)
    with open(os.path.join(out, "computed.json"), "w") as f:
        json.dump({"deterministic-output-path": result}, f)


if __name__ == "__main__":
    main()

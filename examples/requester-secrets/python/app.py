"""Evaluates f(x) = a*x^3 + b*x^2 + c*x + d inside the enclave.

a;b;c;d is the app developer secret (IEXEC_APP_DEVELOPER_SECRET), x is requester secret 1
(IEXEC_REQUESTER_SECRET_1, mapped with --secret 1=<name>). Writes $IEXEC_OUT/result.txt and
declares it in $IEXEC_OUT/computed.json. Never prints a secret value.
"""
import json
import os
import sys


def number(text):
    value = float(text)
    return int(value) if value.is_integer() else value


def main():
    out = os.environ["IEXEC_OUT"]
    result_path = os.path.join(out, "result.txt")
    try:
        raw = os.environ.get("IEXEC_APP_DEVELOPER_SECRET", "")
        parts = raw.split(";")
        if len(parts) != 4:
            raise ValueError("the app developer secret is not a;b;c;d")
        a, b, c, d = (number(p) for p in parts)
        raw_x = os.environ.get("IEXEC_REQUESTER_SECRET_1")
        if not raw_x:
            raise ValueError("no requester secret 1")
        x = number(raw_x)
        y = a * x**3 + b * x**2 + c * x + d
        text = f"f({x}) = {y}\n"
    except ValueError as e:
        print(f"polynomial app: {e}", file=sys.stderr)
        text = f"error: {e}\n"
    with open(result_path, "w") as f:
        f.write(text)
    with open(os.path.join(out, "computed.json"), "w") as f:
        json.dump({"deterministic-output-path": result_path}, f)


if __name__ == "__main__":
    main()

"""Summarises a confidential CSV dataset: rows, columns and the sum of each numeric column.

The pre-compute stage decrypted the dataset to $IEXEC_IN/$IEXEC_DATASET_FILENAME; the app only
ever sees the plaintext inside the enclave and publishes the summary, not the data.
"""
import csv
import json
import os


def main():
    src = os.path.join(os.environ["IEXEC_IN"], os.environ["IEXEC_DATASET_FILENAME"])
    out = os.environ["IEXEC_OUT"]
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0].keys()) if rows else []
    sums = {}
    for column in columns:
        try:
            sums[column] = sum(float(r[column]) for r in rows)
        except ValueError:
            pass
    lines = [f"rows: {len(rows)}", f"columns: {', '.join(columns)}"]
    lines += [f"sum({c}): {v:g}" for c, v in sums.items()]
    result = os.path.join(out, "summary.txt")
    with open(result, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "computed.json"), "w") as f:
        json.dump({"deterministic-output-path": result}, f)


if __name__ == "__main__":
    main()

"""schemathesis hooks for the api's import formats (loaded via SCHEMATHESIS_HOOKS).

`POST /users/import` takes a list of records (schema `ImportRecord`) written as
NDJSON (one JSON object per line) or CSV (a header line, then one record per
line). schemathesis generates the list; these serializers write it the way a
client would. Values that are not a list (negative cases) are written as one
line, so the server sees them as they are.
"""
import csv
import io
import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    records = value if isinstance(value, list) else [value]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return text.encode("utf-8")


@schemathesis.serializer("text/csv")
def csv_records(ctx, value):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if isinstance(value, list) and all(isinstance(r, dict) for r in value):
        columns = ["name", "email", "password"]
        writer.writerow(columns)
        for r in value:
            writer.writerow(["" if r.get(c) is None else str(r.get(c)) for c in columns])
    else:
        out.write(json.dumps(value) + "\n")
    return out.getvalue().encode("utf-8")

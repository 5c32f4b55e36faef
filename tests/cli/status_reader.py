"""Reads `cmdctl status --json` in a loop while writers append; exits 1 on any anomaly.

Usage: python status_reader.py EXPECTED_TOTAL BATCH_SIZE  (prints "<reads> <last total>")
"""

import json
import subprocess
import sys
import time

expected, batch_size = int(sys.argv[1]), int(sys.argv[2])
reads = []
end = time.time() + 120
while time.time() < end:
    r = subprocess.run(
        [sys.executable, "-m", "cmdctl", "status", "--json"], capture_output=True, text=True
    )
    if r.returncode != 0:
        print("FAIL", r.returncode, r.stderr, r.stdout[-2000:])
        sys.exit(1)
    d = json.loads(r.stdout)
    reads.append(d["total"])
    if any(b["total"] != batch_size for b in d["batches"]):
        print("PARTIAL", d["batches"])
        sys.exit(1)
    if d["total"] >= expected:
        break
print(len(reads), max(reads))

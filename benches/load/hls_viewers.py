#!/usr/bin/env python3
"""LL-HLS load client for benchmarks: N threads play one playlist the way an
LL-HLS player does (blocking playlist reload for the next part, then that
part) for SECS seconds. Prints parts fetched.

    python3 benches/load/hls_viewers.py http://127.0.0.1:8080/live/S/index.m3u8 N SECS
"""
import re
import sys
import threading
import time
import urllib.request

url, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
base = url.rsplit("/", 1)[0]
parts = [0] * n
errors = [0] * n


def viewer(i):
    end = time.time() + secs
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    while time.time() < end:
        hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s', text)
        if not hint:
            time.sleep(0.1)
            text = urllib.request.urlopen(url, timeout=30).read().decode()
            continue
        msn, part = hint.group(1), hint.group(2)
        try:
            # The hinted part blocks until it exists, then the playlist that
            # lists it; together that is what a player fetches per part.
            urllib.request.urlopen(f"{base}/part{msn}.{part}.m4s", timeout=30).read()
            parts[i] += 1
            text = urllib.request.urlopen(
                f"{url}?_HLS_msn={msn}&_HLS_part={part}", timeout=30
            ).read().decode()
        except Exception:
            errors[i] += 1
            time.sleep(0.2)
            text = urllib.request.urlopen(url, timeout=30).read().decode()


threads = [threading.Thread(target=viewer, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"viewers={n} parts={sum(parts)} per_viewer={sum(parts) / max(n, 1):.0f} errors={sum(errors)}")

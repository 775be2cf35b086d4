"""rss.py RUNS COMMAND...: runs COMMAND RUNS times under GNU time and prints
the median of its peak resident set size in KiB: the largest of the
runtime process and those it waited for (for `run`, the container's init
before it execs). GNU time, not this script, forks the command: a fork of
Python would count Python's own memory (the kernel keeps the peak of the
memory a process had before exec)."""
import os
import statistics
import subprocess
import sys
import tempfile

runs = int(sys.argv[1])
command = sys.argv[2:]
peaks = []
with tempfile.NamedTemporaryFile("r") as out:
    for _ in range(runs):
        subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", out.name, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        out.seek(0)
        peaks.append(int(out.read().split()[-1]))
print(int(statistics.median(peaks)))

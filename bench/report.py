"""report.py DIR: the tables of a bench/run.sh run (Markdown): medians,
and each runtime's ratio to crun's and to the floor's."""
import json
import os
import statistics
import sys

work = sys.argv[1]


def read(name, default=""):
    path = os.path.join(work, name)
    return open(path).read() if os.path.exists(path) else default


def medians(name):
    """{command name: median seconds} of a hyperfine export."""
    text = read(name)
    if not text:
        return {}
    return {r["command"]: statistics.median(r["times"]) for r in json.loads(text)["results"]}


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


print(read("meta").rstrip())
sizes = {}
for line in read("sizes").splitlines():
    name, size, kind = line.split(" ", 2)
    sizes[name] = (int(size), kind)

for line in read("layouts").splitlines():
    layout, *runtimes = line.split()
    title = {"host": "this host's cgroup layout", "v2view": "cgroup2-only mount namespace (v2 view)"}
    print(f"\n### {title.get(layout, layout)}\n")
    run = medians(f"{layout}-run.json")
    floor = run.get("floor")
    crun = run.get("crun")
    print("| runtime | run (median) | / floor | / crun |")
    print("|---|---|---|---|")
    for name in ["floor"] + runtimes:
        if name in run:
            print(f"| {name} | {ms(run[name])} | {ratio(run[name], floor)} | {ratio(run[name], crun)} |")

    verbs = {v: medians(f"{layout}-{v}.json") for v in ("create", "start", "delete")}
    parallel = medians(f"{layout}-parallel.json")
    n = int(read("parallel_n", "50").strip() or 50)
    print("\n| runtime | create | start | delete | parallel (containers/s) | peak RSS | binary |")
    print("|---|---|---|---|---|---|---|")
    for name in runtimes:
        cells = [ms(verbs[v][name]) if name in verbs[v] else "-" for v in verbs]
        per_second = f"{n / parallel[name]:.0f}" if name in parallel else "-"
        rss = read(f"{layout}-rss-{name}").strip()
        rss = f"{int(rss) / 1024:.1f} MiB" if rss else "-"
        size, kind = sizes.get(name, (0, ""))
        binary = f"{size / 2**20:.1f} MiB, {kind}" if size else "-"
        print(f"| {name} | {' | '.join(cells)} | {per_second} | {rss} | {binary} |")

notes = read("notes").strip()
if notes:
    print("\nnotes:")
    for line in notes.splitlines():
        print(f"- {line}")

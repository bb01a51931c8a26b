"""Summarises `perf script` output of a .NET process (frames named from the JIT's perf map).

Usage: perf_summary.py FILE [incl|self|threads] [N] [FUNCTION]
       perf_summary.py FILE diff N RECORDS OTHER_FILE OTHER_RECORDS
  incl: share of samples with each function anywhere on the stack; self: share with it as the leaf;
  threads: share of each thread name, and the samples per second of the window for the N busiest (the JIT's
  ".NET Tiered Com" thread still busy late in the window means the code was not warm yet).
  With FUNCTION (a substring of a frame), only samples that hold it count, and the share is still of all samples.
  diff: CPU microseconds per record (inclusive, at profile.sh's 999 samples a second) of each function in FILE and
  OTHER_FILE, each run's records being its rate times the perf window, largest difference (OTHER minus FILE) first:
  where, say, a gated run's extra time per record goes against a plain one.
"""
import collections
import re
import sys

SAMPLES_PER_SECOND = 999  # perf record -F in profile.sh

path = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else "incl"
top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
within = sys.argv[4] if len(sys.argv) > 4 and mode != "diff" else None


def summarise(script_path, how):
    total = 0
    counts = collections.Counter()
    seconds = collections.defaultdict(collections.Counter)  # thread name -> second of the window -> samples
    start = None
    with open(script_path, encoding="utf-8", errors="replace") as script:
        for sample in script.read().split("\n\n"):
            lines = [line.strip() for line in sample.strip().split("\n") if line.strip()]
            if len(lines) < 2:
                continue
            total += 1
            # "comm pid/tid time: ...": the thread's name and the sample's time.
            header = re.match(r"(.+?)\s+[\d/]+\s+(?:\[\d+\]\s+)?([\d.]+):", lines[0])
            # "addr name(args)[tier]+off (dso)": the name, without the address, arguments and module.
            frames = [re.sub(r"^[0-9a-f]+ ", "", line).split("(")[0].strip() for line in lines[1:]]
            if within and not any(within in frame for frame in frames):
                continue
            if how == "threads":
                if header:
                    thread, at = header.group(1), float(header.group(2))
                    start = at if start is None else min(start, at)
                    counts[thread] += 1
                    seconds[thread][at] += 1
            elif how == "self":
                counts[frames[0][-120:]] += 1
            else:
                for frame in set(frames):
                    counts[frame[-120:]] += 1
    return total, counts, seconds, start


if mode == "diff":
    records, other_path, other_records = float(sys.argv[4]), sys.argv[5], float(sys.argv[6])
    total, counts, _, _ = summarise(path, "incl")
    other_total, other_counts, _, _ = summarise(other_path, "incl")
    per_record = 1e6 / SAMPLES_PER_SECOND
    print(f"{total * per_record / records:.2f} against {other_total * per_record / other_records:.2f} us per record")
    rows = [(other_counts[f] * per_record / other_records - counts[f] * per_record / records, f) for f in set(counts) | set(other_counts)]
    for difference, frame in sorted(rows, reverse=True)[:top]:
        print(f"{difference:+6.3f} {counts[frame] * per_record / records:6.3f} {other_counts[frame] * per_record / other_records:6.3f} {frame}")
    sys.exit(0)

total, counts, seconds, start = summarise(path, mode)
print(f"{total} samples")
for frame, count in counts.most_common(top):
    print(f"{100 * count / max(total, 1):5.1f}% {frame}")
if mode == "threads":
    for thread, _ in counts.most_common(min(top, 5)):
        per_second = collections.Counter()
        for at, samples in seconds[thread].items():
            per_second[int(at - start)] += samples
        print(f"{thread}: " + " ".join(f"{per_second[s]}" for s in range(max(per_second) + 1)))

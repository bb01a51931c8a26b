# Peak broker RSS while N compatibility checks of a ~0.96 MB Avro schema run at once against the registry.
# Usage: python3 bench/registry/concurrent_compat_memory.py http://127.0.0.1:8081 BROKER_PID N
import json, sys, threading, time, subprocess, requests
reg = sys.argv[1]; pid = sys.argv[2]; n = int(sys.argv[3])
fields = [{"name": f"field_{i:05d}", "type": ["null", "string"], "default": None, "doc": "x" * 10} for i in range(10500)]
schema = json.dumps({"type": "record", "name": "Big", "fields": fields})
print("schema bytes", len(schema))
h = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
r = requests.post(f"{reg}/subjects/big-value/versions", data=json.dumps({"schema": schema}), headers=h); print(r.status_code, r.text[:80])
fields2 = fields + [{"name": "extra", "type": ["null", "string"], "default": None}]
body = json.dumps({"schema": json.dumps({"type": "record", "name": "Big", "fields": fields2})})
def rss(): return int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0]) // 1024
peak = [rss()]; base = peak[0]; done = [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss()); time.sleep(0.02)
t = threading.Thread(target=sample); t.start()
codes = []
def check():
    codes.append(requests.post(f"{reg}/compatibility/subjects/big-value/versions/latest", data=body, headers=h).json().get("is_compatible"))
t0 = time.time()
ths = [threading.Thread(target=check) for _ in range(n)]
[x.start() for x in ths]; [x.join() for x in ths]
done[0] = True; t.join()
print(f"{n} at once: rss {base} -> peak {peak[0]} MiB, {time.time()-t0:.1f} s, answers {set(codes)} x{len(codes)}")

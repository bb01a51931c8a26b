# Broker restart time with many stored schemas: registers N schemas per format (Avro, JSON Schema, Protobuf; each a
# 40-field record under its own subject), stops the broker, starts it again on the same data directory and prints how
# long the restarted broker took to answer Kafka connections and the registry's GET /subjects, and to answer a new
# registration (which waits for the stored schemas to be indexed), plus its RSS then.
# Usage: python3 bench/registry/restart.py N [PORT=39500]   (from the repository root, after a Release build)
import json, os, shutil, socket, subprocess, sys, tempfile, time

import requests

count = int(sys.argv[1])
port = int(sys.argv[2]) if len(sys.argv) > 2 else 39500
http_port, registry_port = port + 1, port + 2
registry = f"http://127.0.0.1:{registry_port}"
work = tempfile.mkdtemp()
command = ["dotnet", "broker/SharedLog.Broker/bin/Release/net10.0/SharedLog.Broker.dll", "--port", str(port),
           "--http-port", str(http_port), "--registry-port", str(registry_port), "--data-dir", f"{work}/data"]
headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def start(log_name):
    return subprocess.Popen(command, stdout=open(f"{work}/{log_name}", "w"), stderr=subprocess.STDOUT)


def wait_until(check, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.05)
    raise SystemExit(f"not ready within {seconds} s; logs in {work}")


def kafka_accepts():
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def subjects_answer():
    return requests.get(f"{registry}/subjects", timeout=5).status_code == 200


def register(subject, schema_type, schema):
    body = {"schema": schema} if schema_type == "AVRO" else {"schemaType": schema_type, "schema": schema}
    response = requests.post(f"{registry}/subjects/{subject}/versions", data=json.dumps(body), headers=headers, timeout=600)
    response.raise_for_status()
    return response.json()["id"]


def schemas(i):
    avro = json.dumps({"type": "record", "name": f"Avro{i}", "namespace": "bench.restart",
                       "fields": [{"name": f"f{j}", "type": ["null", "string"], "default": None} for j in range(40)]})
    json_schema = json.dumps({"type": "object", "title": f"Json{i}",
                              "properties": {f"f{j}": {"type": "string", "maxLength": 64} for j in range(40)},
                              "required": ["f0"]})
    proto = f"syntax = \"proto3\";\npackage bench.restart;\nmessage Proto{i} {{\n" + "".join(
        f"  string f{j} = {j + 1};\n" for j in range(40)) + "}\n"
    return [("AVRO", avro), ("JSON", json_schema), ("PROTOBUF", proto)]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) // 1024


broker = start("first.log")
try:
    wait_until(subjects_answer, 60)
    began = time.monotonic()
    for i in range(count):
        for schema_type, schema in schemas(i):
            register(f"restart-{schema_type.lower()}-{i}-value", schema_type, schema)
    print(f"registered {3 * count} schemas in {time.monotonic() - began:.1f} s")
finally:
    broker.terminate()
    broker.wait(60)

started = time.monotonic()
broker = start("second.log")
try:
    wait_until(kafka_accepts, 600)
    kafka_s = time.monotonic() - started
    wait_until(subjects_answer, 600)
    subjects_s = time.monotonic() - started
    register("restart-after-value", "AVRO", json.dumps({"type": "record", "name": "After", "fields": [{"name": "a", "type": "int"}]}))
    registered_s = time.monotonic() - started
    print(f"restart with {3 * count} stored schemas: Kafka port {kafka_s:.2f} s, GET /subjects {subjects_s:.2f} s, "
          f"a new registration answered {registered_s:.2f} s after start; RSS {rss_mib(broker.pid)} MiB")
finally:
    broker.terminate()
    broker.wait(60)
    shutil.rmtree(work, ignore_errors=True)

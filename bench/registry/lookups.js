// Registry lookup load: N keep-alive HTTP connections each asking GET /schemas/ids/{id} in a loop for
// a fixed time, as deserializers with cold client caches do. Prints requests/s and latency percentiles.
// Usage: node bench/registry/lookups.js http://127.0.0.1:8081 [seconds=10] [connections=16]
const http = require('http');

const [base, seconds = '10', connections = '16'] = process.argv.slice(2);
const url = new URL(base);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(connections) });

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path, agent,
      headers: body ? { 'Content-Type': 'application/vnd.schemaregistry.v1+json' } : {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`${res.statusCode}`))));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

async function main() {
  const schema = JSON.stringify({ type: 'record', name: 'Lookup', fields: [{ name: 'id', type: 'string' }] });
  const { id } = JSON.parse(await request('POST', '/subjects/lookup-bench-value/versions', JSON.stringify({ schema })));
  const end = Date.now() + Number(seconds) * 1000;
  const latencies = [];
  let errors = 0;
  const worker = async () => {
    while (Date.now() < end) {
      const start = process.hrtime.bigint();
      try { await request('GET', `/schemas/ids/${id}`); } catch { errors++; }
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  };
  const began = Date.now();
  await Promise.all(Array.from({ length: Number(connections) }, worker));
  const elapsed = (Date.now() - began) / 1000;
  latencies.sort((a, b) => a - b);
  const p = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(3);
  console.log(`${latencies.length} lookups in ${elapsed.toFixed(1)} s = ${(latencies.length / elapsed).toFixed(0)}/s over ${connections} connections; p50 ${p(0.5)} ms, p99 ${p(0.99)} ms; errors ${errors}`);
  agent.destroy();
}

main().catch((e) => { console.error(e); process.exit(1); });

// The interop scenario with @grpc/grpc-js as the client; the proto is loaded
// at run time by @grpc/proto-loader (no generated code).
//
// Run by tests/interop/board_fixture.py, which provides the board and these
// variables: BOARD_ADDR, BOARD_CA, CLIENT_CERT, CLIENT_KEY, BOARD_NAME; plus
// SEED_SCRIPT (path of thread_basic.py).
//
// `node interop.js --load-only` only loads the proto and builds the client.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', '..', 'proto');
const PROTO_FILE = 'threadfleet/board/v1/board.proto';
const RPC_TIMEOUT_MS = 10000;
const REMOTE_PATH = '/thread_basic.py';
const EXPECTED_OUTPUT = 'Main thread is running:  0';
const LIVE = ['THREAD_STATE_RUNNING', 'THREAD_STATE_SLEEPING', 'THREAD_STATE_WAITING_LOCK'];

class Failure extends Error {}

function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

function step(name) {
  console.log(`interop_node: ${name}`);
}

function env(name) {
  const v = process.env[name];
  if (!v) throw new Failure(`${name} is not set (run through tests/interop/board_fixture.py)`);
  return v;
}

function loadService() {
  const def = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true, // field names as in the .proto
    longs: Number, // uint64 sizes/times fit a double here
    enums: String,
    defaults: true,
    oneofs: true, // sets `update`/`part`/`code` to the name of the field set
  });
  return grpc.loadPackageDefinition(def).threadfleet.board.v1.BoardControl;
}

function deadline(ms = RPC_TIMEOUT_MS) {
  return { deadline: Date.now() + ms };
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, deadline(), (err, resp) => (err ? reject(err) : resolve(resp)));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Calls fn every 50 ms until it resolves to something truthy; returns that.
async function poll(what, timeoutMs, fn) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Failure(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function writeFile(client, remotePath, content) {
  const size = Math.max(1, Math.ceil(content.length / 3));
  const chunks = [];
  for (let i = 0; i < content.length; i += size) chunks.push(content.subarray(i, i + size));
  check(chunks.length >= 2, `seed script too small for 2+ chunks (${content.length} bytes)`);
  return new Promise((resolve, reject) => {
    const call = client.WriteFile(deadline(), (err, resp) =>
      err ? reject(err) : resolve({ resp, nchunks: chunks.length }),
    );
    call.write({ header: { path: remotePath, expected_size_bytes: content.length } });
    for (const c of chunks) call.write({ data: c });
    call.end();
  });
}

function streamOutput(client, programId) {
  return new Promise((resolve, reject) => {
    const parts = [];
    const call = client.StreamOutput({ program_id: programId, from_offset: 0, follow: false }, deadline());
    call.on('data', (r) => parts.push(Buffer.from(r.chunk.data)));
    call.on('error', reject);
    call.on('end', () => resolve(Buffer.concat(parts)));
  });
}

// A WatchHealth stream that counts snapshots and remembers THREAD_KILLED events.
function watchHealth(client, boardName) {
  const w = { snapshots: 0, killed: new Map(), error: null, ended: false, cancelled: false, badName: null };
  w.call = client.WatchHealth({ period_ms: 100 }, deadline(60000));
  w.call.on('data', (u) => {
    if (u.update === 'snapshot') {
      w.snapshots++;
      if (u.snapshot.board_name !== boardName) w.badName = u.snapshot.board_name;
    } else if (u.update === 'event' && u.event.kind === 'EVENT_KIND_THREAD_KILLED') {
      w.killed.set(u.event.thread_id, u.event);
    }
  });
  w.call.on('error', (e) => {
    if (!(w.cancelled && e.code === grpc.status.CANCELLED)) w.error = e;
  });
  w.call.on('end', () => (w.ended = true));
  w.call.on('close', () => (w.ended = true));
  w.failure = () => {
    if (w.error) return `WatchHealth failed: ${grpc.status[w.error.code]} ${w.error.details}`;
    if (w.badName !== null) return `snapshot board_name '${w.badName}', expected '${boardName}'`;
    if (w.ended && !w.cancelled) return 'WatchHealth ended by itself';
    return null;
  };
  return w;
}

async function scenario(client, boardName, seedPath) {
  step('GetInfo');
  const { info } = await unary(client, 'GetInfo', {});
  check(info && info.name === boardName, `GetInfo name '${info && info.name}', expected '${boardName}'`);

  step('WriteFile');
  const content = fs.readFileSync(seedPath);
  const localSha = crypto.createHash('sha256').update(content).digest('hex');
  const { resp: written, nchunks } = await writeFile(client, REMOTE_PATH, content);
  check(written.sha256_hex === localSha, `WriteFile sha256 '${written.sha256_hex}', expected '${localSha}'`);
  check(written.size_bytes === content.length, `WriteFile size ${written.size_bytes}, expected ${content.length}`);
  console.log(`  ${content.length} bytes in ${nchunks} chunks, sha256 ${localSha}`);

  step('ListFiles');
  const { entries } = await unary(client, 'ListFiles', { path: '/' });
  const entry = entries.find((e) => e.name === 'thread_basic.py');
  check(entry, `ListFiles / lacks thread_basic.py: ${entries.map((e) => e.name).join(', ')}`);
  check(!entry.is_dir && entry.size_bytes === content.length, `ListFiles entry ${JSON.stringify(entry)}`);

  step('StartProgram');
  const started = await unary(client, 'StartProgram', { path: REMOTE_PATH });
  const pid = started.program_id;
  const mainTid = started.main_thread_id;
  check(pid && mainTid, `StartProgram returned ${JSON.stringify(started)}`);

  step('ListThreads: 2+ threads of the program');
  const threads = await poll('2+ threads of the program', 2000, async () => {
    const r = await unary(client, 'ListThreads', { program_id: pid });
    const mine = r.threads.filter((t) => t.program_id === pid);
    return mine.length >= 2 ? mine : null;
  });
  const victim = threads.find((t) => t.id !== mainTid);
  check(victim, `no thread besides the main thread ${mainTid}: ${JSON.stringify(threads)}`);
  check(LIVE.includes(victim.state), `thread ${victim.id} not alive before the kill: ${victim.state}`);

  step('WatchHealth (opened before the kill, to see its event)');
  const watch = watchHealth(client, boardName);
  await poll('first WatchHealth snapshot', 5000, async () => {
    const f = watch.failure();
    if (f) throw new Failure(f);
    return watch.snapshots > 0;
  });

  step(`KillThread ${victim.id} (grace 200 ms)`);
  const { thread: killed } = await unary(client, 'KillThread', { thread_id: victim.id, grace_ms: 200 });
  check(killed && killed.id === victim.id, `KillThread returned ${JSON.stringify(killed)}`);
  check(!killed.unkillable, `thread ${victim.id} reported unkillable`);

  await poll(`thread ${victim.id} KILLED in ListThreads`, 2000, async () => {
    const r = await unary(client, 'ListThreads', { program_id: pid, include_finished: true });
    const t = r.threads.find((x) => x.id === victim.id);
    check(t, `thread ${victim.id} missing from ListThreads(include_finished)`);
    check(LIVE.includes(t.state) || t.state === 'THREAD_STATE_KILLED', `thread ${victim.id} ended as ${t.state}`);
    return t.state === 'THREAD_STATE_KILLED';
  });

  step('WatchHealth: 2+ snapshots and the THREAD_KILLED event');
  try {
    await poll('2+ snapshots and the THREAD_KILLED event', 5000, async () => {
      const f = watch.failure();
      if (f) throw new Failure(f);
      return watch.snapshots >= 2 && watch.killed.has(victim.id);
    });
  } catch (e) {
    if (e instanceof Failure) {
      e.message += ` (${watch.snapshots} snapshots, event ${watch.killed.has(victim.id) ? 'seen' : 'not seen'})`;
    }
    watch.cancelled = true;
    watch.call.cancel();
    throw e;
  }
  console.log(`  ${watch.snapshots} snapshots; event: '${watch.killed.get(victim.id).message}'`);
  watch.cancelled = true;
  watch.call.cancel();
  await poll('WatchHealth closed after cancel', 5000, async () => watch.ended);

  step('StreamOutput');
  const out = (await streamOutput(client, pid)).toString('latin1');
  check(out.includes(EXPECTED_OUTPUT), `StreamOutput lacks '${EXPECTED_OUTPUT}'; got ${JSON.stringify(out)}`);
}

async function main() {
  const BoardControl = loadService();
  if (process.argv.includes('--load-only')) {
    const methods = Object.keys(BoardControl.service);
    check(methods.includes('WatchHealth'), `BoardControl lacks WatchHealth: ${methods}`);
    console.log(`interop_node: loaded ${PROTO_FILE}: ${methods.join(', ')}`);
    return;
  }
  const creds = grpc.credentials.createSsl(
    fs.readFileSync(env('BOARD_CA')),
    fs.readFileSync(env('CLIENT_KEY')),
    fs.readFileSync(env('CLIENT_CERT')),
  );
  const client = new BoardControl(env('BOARD_ADDR'), creds);
  try {
    await new Promise((resolve, reject) =>
      client.waitForReady(Date.now() + RPC_TIMEOUT_MS, (err) =>
        err ? reject(new Failure(`no TLS/HTTP2 connection to ${env('BOARD_ADDR')}: ${err.message}`)) : resolve(),
      ),
    );
    await scenario(client, env('BOARD_NAME'), env('SEED_SCRIPT'));
  } finally {
    client.close();
  }
  console.log('interop_node: PASS');
}

main().catch((e) => {
  if (e instanceof Failure) {
    console.error(`interop_node: FAIL: ${e.message}`);
  } else if (e && typeof e.code === 'number' && e.details !== undefined) {
    console.error(`interop_node: FAIL: RPC error ${grpc.status[e.code]}: ${e.details}`);
  } else {
    console.error(`interop_node: FAIL: ${e && e.stack ? e.stack : e}`);
  }
  process.exitCode = 1;
});

/**
 * The running service under load, over loopback: `npm run api` and `npm run worker` as child processes
 * (as in production, under a private queue prefix and data directory), then closed-loop clients at
 * 1, 4 and 16 concurrent connections. Each client uploads a held-out scene (POST /v1/jobs with
 * `Prefer: wait=30`, so the finished job comes back in the answer) and starts the next job; at one
 * client, half of each round follows its job the way without `Prefer: wait` (POST, then the job's
 * Server-Sent Events until `completed`), reported on its own row. Reports jobs per second, p50/p99 of
 * the end-to-end latency, the latency the API and queue add over the same request run in-process
 * (runPipeline, median of the same image, method and budget, with the model loaded as the worker loads
 * it; run between tenths of the one-client level, so both see the same machine), and the largest
 * event-loop delay the API process saw during each level (prom-client's monitorEventLoopDelay max, reset
 * at every scrape). For the one-client level, where that time goes, for both ways: the upload until the
 * job is added, the wait for a worker, the worker, and the way back to the client, from the timestamps
 * BullMQ keeps on each job.
 *
 * Then throughput against the number of worker processes (1, 2, 3 by default) at a fixed number of
 * clients, with the CPU time the API and the workers spent per job (from /proc), which bounds what
 * more workers can give on this machine's cores.
 *
 *   npx tsx bench/service.ts [--seconds S] [--levels 1,4,16] [--workers 1,2,3] [--scale-clients 8]
 *                            [--scale-seconds S] [--markdown] [--cpu-prof DIR] [--dist] [--client fetch|http]
 *
 * `--dist`: the API and workers run the compiled JavaScript (`npm run build`, then `node dist/...`), as
 * the containers run them; by default they run the TypeScript through tsx's loader, as `npm start` does.
 * `--client http`: the clients use node:http with a hand-built multipart body instead of fetch and
 * FormData (see oneJobHttp): the client's own CPU sits on the measured path, on the same cores.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import fs from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { readEvalSet } from "./eval-set.ts";
import { readManifest } from "../models/runtime/manifest.ts";
import { parseJobRequest, requestLimits } from "../pipeline/request.ts";
import { runPipeline } from "../pipeline/run.ts";
import { loadModel } from "../models/runtime/model.ts";
import { ortThreadsPerInference } from "../services/worker/runner.ts";
import { QUEUE_NAMES } from "../services/shared/queues.ts";
import { defaultModelDir, loadConfig, loadLimits } from "../common/config.ts";
import { median, percentile } from "../common/stats.ts";
import { startRedis } from "../test/fault/processes.ts";
import { cleanupPrefix } from "../test/helpers/redis.ts";
import { parseServerTiming } from "../services/api/server-timing.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "15" },
    levels: { type: "string", default: "1,4,16" },
    workers: { type: "string", default: "1,2,3" },
    "scale-clients": { type: "string", default: "8" },
    "scale-seconds": { type: "string" },
    markdown: { type: "boolean", default: false },
    "cpu-prof": { type: "string" },
    dist: { type: "boolean", default: false },
    client: { type: "string", default: "fetch" },
  },
});
const seconds = Number(values.seconds);
if (values.client !== "fetch" && values.client !== "http") throw new Error("--client: fetch or http");
const levels = values.levels.split(",").map(Number);
const workerCounts = values.workers.split(",").filter(Boolean).map(Number);
const scaleClients = Number(values["scale-clients"]);
const scaleSeconds = Number(values["scale-seconds"] ?? seconds);
const METHOD = "fopru";
const KEEP = "36";
// A private redis-server (loopback, no persistence) unless REDIS_URL names one: a Redis shared with
// other work would time that work's commands as well as ours.
const privateRedis = process.env.REDIS_URL ? null : await startRedis();
const redisUrl = process.env.REDIS_URL || privateRedis!.url;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

if (values.dist) {
  // npm's own lines go to stderr: stdout is the report (`npm run bench` writes it into performance.md).
  const build = spawnSync("npm", ["run", "build"], { stdio: ["ignore", process.stderr, process.stderr] });
  if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status})`);
}

function start(entry: string, env: NodeJS.ProcessEnv): ChildProcess {
  // node with tsx's loader, not the tsx CLI: the pid is the process itself (its CPU time, its signals).
  // With --dist, node runs the compiled file under dist/ (no loader), as the containers do.
  // --cpu-prof DIR: V8 CPU profiles of the API and worker processes (and the worker's threads), written
  // when they exit, for chrome://inspect or `node --cpu-prof`'s usual readers.
  const prof = values["cpu-prof"] ? ["--cpu-prof", "--cpu-prof-dir", values["cpu-prof"]] : [];
  const run = values.dist ? [path.join("dist", entry.replace(/\.ts$/, ".js"))] : ["--import", "tsx", entry];
  const child = spawn(process.execPath, [...prof, ...run], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.on("data", (d) => {
    const s = String(d);
    if (/error/i.test(s) && !/npm warn/.test(s))
      process.stderr.write(`[${path.basename(path.dirname(entry))}] ${s}`);
  });
  return child;
}

async function waitReady(base: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`service at ${base} not ready within ${ms} ms`);
}

/** One job as the client saw it: its id, when it started (epoch ms), the POST's and the whole time. */
interface JobTiming {
  id: string;
  start: number;
  postMs: number;
  ms: number;
  /** The POST's Server-Timing parts (services/api/server-timing.ts). */
  server: Record<string, number>;
}

/**
 * How a client follows its job: `wait` posts with `Prefer: wait=30` and gets the finished job in the
 * answer (what a client that wants the result soonest does); `sse` posts, then reads the job's event
 * stream until `completed` (the way before `Prefer: wait`, and what a client that shows progress does).
 */
type Mode = "wait" | "sse";

/**
 * `--client http`: the same requests through node:http (one keep-alive agent), the multipart body built
 * by hand in one Buffer: a client that spends less CPU per request than fetch with FormData, to tell
 * the client's part of the time from the service's. The default, `fetch`, is what earlier figures used.
 */
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function multipart(fields: Record<string, string>, file: { name: string; type: string; bytes: Buffer }) {
  const boundary = `vtc-bench-${Math.random().toString(16).slice(2)}`;
  const head = Object.entries(fields)
    .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
    .join("");
  const fileHead = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\nContent-Type: ${file.type}\r\n\r\n`;
  const body = Buffer.concat([
    Buffer.from(head + fileHead),
    file.bytes,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

/** A request through node:http; resolves with the status, the headers and the response (not yet read). */
function httpRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string | number>; body?: Buffer },
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? "GET", headers: opts.headers, agent: httpAgent },
      resolve,
    );
    req.once("error", reject);
    req.end(opts.body);
  });
}

async function readAll(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** oneJob through node:http (`--client http`). */
async function oneJobHttp(base: string, image: Buffer, prompt: string, mode: Mode): Promise<JobTiming> {
  const t0 = performance.now();
  const { body, type } = multipart(
    { prompt, method: METHOD, keep: KEEP },
    { name: "scene.png", type: "image/png", bytes: image },
  );
  const headers: Record<string, string | number> = { "content-type": type, "content-length": body.length };
  if (mode === "wait") headers.prefer = "wait=30";
  const post = await httpRequest(`${base}/v1/jobs`, { method: "POST", headers, body });
  const server = parseServerTiming(post.headers["server-timing"] as string | undefined);
  const text = await readAll(post);
  if (post.statusCode === 200) {
    const job = JSON.parse(text) as { id: string; status: string };
    if (job.status !== "completed") throw new Error(`job ${job.id} ${job.status}`);
    const ms = performance.now() - t0;
    return { id: job.id, start: performance.timeOrigin + t0, postMs: ms, ms, server };
  }
  if (post.statusCode !== 202) throw new Error(`POST /v1/jobs: ${post.statusCode} ${text}`);
  const { id } = JSON.parse(text) as { id: string };
  const postMs = performance.now() - t0;
  const res = await httpRequest(`${base}/v1/jobs/${id}/events`, {});
  let buf = "";
  for await (const chunk of res) {
    buf += String(chunk);
    if (/^event: completed$/m.test(buf)) {
      const ms = performance.now() - t0;
      res.destroy();
      return { id, start: performance.timeOrigin + t0, postMs, ms, server };
    }
    if (/^event: failed$/m.test(buf)) throw new Error(`job ${id} failed: ${buf.slice(-400)}`);
  }
  throw new Error(`job ${id}: event stream ended without completion`);
}

/** Uploads one job and resolves when the client has its end (the 200 answer, or `completed`). */
async function oneJob(base: string, image: Buffer, prompt: string, mode: Mode = "wait"): Promise<JobTiming> {
  if (values.client === "http") return oneJobHttp(base, image, prompt, mode);
  const t0 = performance.now();
  const form = new FormData();
  form.append("file", new Blob([new Uint8Array(image)], { type: "image/png" }), "scene.png");
  form.append("prompt", prompt);
  form.append("method", METHOD);
  form.append("keep", KEEP);
  const headers: Record<string, string> = mode === "wait" ? { Prefer: "wait=30" } : {};
  const post = await fetch(`${base}/v1/jobs`, { method: "POST", body: form, headers });
  const server = parseServerTiming(post.headers.get("server-timing"));
  if (post.status === 200) {
    const job = (await post.json()) as { id: string; status: string };
    if (job.status !== "completed") throw new Error(`job ${job.id} ${job.status}`);
    const ms = performance.now() - t0;
    return { id: job.id, start: performance.timeOrigin + t0, postMs: ms, ms, server };
  }
  if (post.status !== 202) throw new Error(`POST /v1/jobs: ${post.status} ${await post.text()}`);
  const { id } = (await post.json()) as { id: string };
  const postMs = performance.now() - t0;
  const res = await fetch(`${base}/v1/jobs/${id}/events`);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`job ${id}: event stream ended without completion`);
    buf += dec.decode(value, { stream: true });
    if (/^event: completed$/m.test(buf)) {
      const ms = performance.now() - t0;
      await reader.cancel();
      return { id, start: performance.timeOrigin + t0, postMs, ms, server };
    }
    if (/^event: failed$/m.test(buf)) throw new Error(`job ${id} failed: ${buf.slice(-400)}`);
  }
}

/** CPU time (user + system) a process has used, ms, from /proc (Linux; NaN elsewhere). */
function cpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux).
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Waits until /readyz lists `n` workers (a worker registers once its model is loaded). */
async function waitWorkers(base: string, n: number, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await fetch(`${base}/readyz`).then((x) => x.json() as Promise<{ workers?: unknown[] }>);
    if ((r.workers?.length ?? 0) >= n) return;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`${n} workers not ready within ${ms} ms`);
}

/** `c` closed-loop clients for `secs`: the latencies and the wall time, s. */
async function runClients(
  base: string,
  c: number,
  secs: number,
  mode: Mode = "wait",
): Promise<{ lat: number[]; jobs: JobTiming[]; wall: number }> {
  const jobs: JobTiming[] = [];
  const t0 = performance.now();
  const end = t0 + secs * 1000;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < end) jobs.push(await oneJob(base, image, q.question, mode));
    }),
  );
  return { lat: jobs.map((j) => j.ms), jobs, wall: (performance.now() - t0) / 1000 };
}

/**
 * Where the time of these jobs went, from what BullMQ stored on each (`timestamp` when the API added
 * it, `processedOn` when a worker took it, `finishedOn` when the worker finished it; Date.now() of
 * each process, one machine's clock, 1 ms steps) and the pipeline's own total.
 */
async function breakdown(byMode: Record<Mode, JobTiming[]>): Promise<string[]> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(QUEUE_NAMES.pipeline, { connection, prefix });
  const parts = async (jobs: JobTiming[]) => {
    const seg = {
      added: [] as number[],
      post: [] as number[],
      pickup: [] as number[],
      worker: [] as number[],
      pipeline: [] as number[],
      back: [] as number[],
      total: [] as number[],
      outside: [] as number[],
      // Server-Timing of the POST: the API's own parts, and the rest of the POST (client and loopback)
      admit: [] as number[],
      upload: [] as number[],
      checks: [] as number[],
      store: [] as number[],
      queue: [] as number[],
      view: [] as number[],
      api: [] as number[],
      client: [] as number[],
    };
    for (const j of jobs) {
      const job = await queue.getJob(j.id);
      if (!job?.processedOn || !job.finishedOn) continue;
      seg.added.push(job.timestamp - j.start);
      seg.post.push(j.postMs);
      seg.pickup.push(job.processedOn - job.timestamp);
      seg.worker.push(job.finishedOn - job.processedOn);
      seg.pipeline.push((job.returnvalue as { timings: { total: number } }).timings.total);
      seg.back.push(j.start + j.ms - job.finishedOn);
      seg.total.push(j.ms);
      seg.outside.push(j.ms - seg.pipeline[seg.pipeline.length - 1]);
      const st = j.server;
      for (const k of ["admit", "upload", "checks", "store", "queue", "view"] as const) {
        if (st[k] !== undefined) seg[k].push(st[k]);
      }
      if (st.total !== undefined) {
        seg.api.push(st.total - (st.wait ?? 0));
        seg.client.push(j.postMs - st.total);
      }
    }
    return seg;
  };
  let wait: Awaited<ReturnType<typeof parts>>;
  let sse: Awaited<ReturnType<typeof parts>>;
  try {
    wait = await parts(byMode.wait);
    sse = await parts(byMode.sse);
  } finally {
    await queue.close();
    connection.disconnect(); // a connection passed in is the caller's to close
  }
  const cell = (v: number[]) =>
    v.length ? `${median(v).toFixed(1)} | ${percentile(v, 90).toFixed(1)}` : "- | -";
  const row = (what: string, key: keyof typeof wait, inWait = true) =>
    `| ${what} | ${inWait ? cell(wait[key]) : "- | -"} | ${cell(sse[key])} |`;
  return [
    "",
    `Where the time of the one-client jobs goes (${wait.total.length} jobs with \`Prefer: wait\`, ${sse.total.length} with POST then the event stream, in the same rounds; medians of each part, which need not add up to the median of the whole; the parts between processes from their Date.now(), 1 ms steps):`,
    "",
    "| part | Prefer: wait p50 ms | p90 ms | POST, then events p50 ms | p90 ms |",
    "|---|---|---|---|---|",
    row(
      "request sent until the job was added (upload parsed and hashed, file probed and stored; BullMQ's timestamp)",
      "added",
    ),
    row("POST /v1/jobs until its 202", "post", false),
    row("... in the API (Server-Timing): admission (auth, Redis gate, rate and active-job checks)", "admit"),
    row("... in the API: upload parsed and hashed (multer)", "upload"),
    row("... in the API: fields checked", "checks"),
    row("... in the API: file probed (sharp) and put in the blob store", "store"),
    row("... in the API: job added (BullMQ)", "queue"),
    row("... in the API: the finished job read back (`Prefer: wait`)", "view"),
    row("... in the API, all but the wait for the job's end", "api"),
    row(
      "... outside the API's handler: the client building and sending the request, loopback, Node's HTTP parsing, reading the answer",
      "client",
    ),
    row("job added until a worker took it (BullMQ's timestamp to processedOn)", "pickup"),
    row("in the worker (processedOn to finishedOn)", "worker"),
    row("... of which the pipeline (the result's timings.total)", "pipeline"),
    row(
      "worker finished until the client had the finished job (the 200, or `completed` on its stream)",
      "back",
    ),
    row("the whole job, as the client saw it", "total"),
    row(
      "the whole job minus its own pipeline time (per job): what the service adds, not counting the in-process run's drift",
      "outside",
    ),
  ];
}

async function loopMaxLagSeconds(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.match(/^(?:vtc_process_)?nodejs_eventloop_lag_max_seconds (\S+)$/m);
  return m ? Number(m[1]) : Number.NaN;
}

const modelDir = defaultModelDir();
const scenes = readEvalSet(modelDir).filter((q) => q.kind === "scene");
const q = scenes[0];
const image = readFileSync(path.join(modelDir, "eval", q.image));

// The same request in-process, for the overhead of the API and the queue: the model loaded with the
// options the worker's thread uses (one intra-op thread on 2 cores, no spinning; pipeline-runner.ts).
const model = await loadModel(modelDir, {
  allowSpinning: false,
  intraOpNumThreads: ortThreadsPerInference(1, os.availableParallelism()),
});
const request = parseJobRequest(
  { prompt: q.question, method: METHOD, keep: KEEP },
  requestLimits(readManifest(modelDir).manifest, loadLimits()),
);
/** CPU time (user + system) of this process, ms. */
function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
/** CPU ms of the in-process runs, all of them together, and how many. */
const inprocCpu = { ms: 0, runs: 0 };
async function inProcess(runs: number, warmup = 0): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < runs + warmup; i++) {
    const t = performance.now();
    const cpu = ownCpuMs();
    await runPipeline({ ...request, files: [{ bytes: image, name: "scene.png" }] }, { model });
    if (i < warmup) continue;
    ms.push(performance.now() - t);
    inprocCpu.ms += ownCpuMs() - cpu;
    inprocCpu.runs += 1;
  }
  return ms;
}
await inProcess(0, 3); // warm-up (JIT, the model's sessions)
/** In-process runs; at the one-client level they alternate with the service's jobs (`ROUNDS`). */
const inproc: number[] = [];
/** The one-client level runs in this many rounds, each followed by IN_PROCESS_PER_ROUND in-process runs. */
const ROUNDS = 10;
const IN_PROCESS_PER_ROUND = 4;

const port = await freePort();
// Hash-tagged, like the default ({vtc}).
const prefix = `{vtc-bench-${process.pid}}`;
const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-bench-"));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  PORT: String(port),
  VTC_QUEUE_PREFIX: prefix,
  VTC_DATA_DIR: dataDir,
  REDIS_URL: redisUrl,
  // Every client here is one address, far over the default 600 requests a minute: the limit is
  // raised out of the way, not turned off, so its Redis check still costs what it costs.
  VTC_RATE_LIMIT_PER_MIN: process.env.VTC_RATE_LIMIT_PER_MIN ?? "1000000000",
  // Every job sends the same image: the workers' encoder-output cache would answer all but the first
  // from disk, which neither real traffic nor the in-process run gets.
  VTC_ENCODER_CACHE_BYTES: "0",
};
const base = `http://127.0.0.1:${port}`;
const api = start("services/api/main.ts", env);
const workers = [start("services/worker/main.ts", env)];
const lines: string[] = [];
try {
  await waitReady(base);
  await oneJob(base, image, q.question); // warm-up: the worker thread loads the model
  const rows: string[] = [];
  let parts: string[] = [];
  // Who spends CPU on a job: the API, the worker (its threads included), Redis, the clients.
  const who = () => [cpuMs(api.pid), cpuMs(workers[0].pid), cpuMs(privateRedis?.child.pid), ownCpuMs()];
  for (const c of levels) {
    await loopMaxLagSeconds(base); // reset the API's event-loop histogram
    // One client: in rounds, each followed by a few in-process runs, so that both see the same
    // stretches of this machine's load (it drifts within seconds when the machine is shared); each
    // round half with `Prefer: wait`, half the way before it (POST, then the event stream).
    const rounds = c === 1 ? ROUNDS : 1;
    const byMode: Record<Mode, JobTiming[]> = { wait: [], sse: [] };
    const spent = { wait: [0, 0, 0, 0], sse: [0, 0, 0, 0] };
    const wall = { wait: 0, sse: 0 };
    for (let r = 0; r < rounds; r++) {
      const modes: Mode[] = c === 1 ? (r % 2 ? ["sse", "wait"] : ["wait", "sse"]) : ["wait"];
      for (const mode of modes) {
        const cpu0 = who();
        const round = await runClients(base, c, seconds / rounds / modes.length, mode);
        for (const [i, v] of who().entries()) spent[mode][i] += v - cpu0[i];
        byMode[mode].push(...round.jobs);
        wall[mode] += round.wall;
      }
      if (c === 1) inproc.push(...(await inProcess(IN_PROCESS_PER_ROUND)));
    }
    if (inproc.length === 0) inproc.push(...(await inProcess(20)));
    const lag = await loopMaxLagSeconds(base);
    if (c === 1) parts = await breakdown(byMode);
    for (const mode of c === 1 ? (["wait", "sse"] as const) : (["wait"] as const)) {
      const jobs = byMode[mode];
      const lat = jobs.map((j) => j.ms);
      const cpu = spent[mode].map((v) => v / jobs.length);
      const label = mode === "wait" ? String(c) : `${c}, POST then event stream`;
      rows.push(
        `| ${label} | ${lat.length} | ${(lat.length / wall[mode]).toFixed(2)} | ${median(lat).toFixed(1)} | ${percentile(lat, 99).toFixed(1)} | ${(median(lat) - median(inproc)).toFixed(1)} | ${(median(lat) / median(inproc)).toFixed(2)} | ${cpu.map((v) => (Number.isNaN(v) ? "-" : v.toFixed(1))).join(" / ")} | ${mode === "wait" ? (lag * 1000).toFixed(1) : "(with the row above)"} |`,
      );
      if (!values.markdown) process.stderr.write(`${rows.at(-1)}\n`);
    }
  }
  lines.push(
    `Each job: one 96 x 96 held-out scene, method ${METHOD}, keep ${KEEP}, a one-word answer. Redis: ${privateRedis ? "a private redis-server started by the benchmark" : "REDIS_URL"}. One API process and one worker process (${values.dist ? "compiled JavaScript under dist/, as in the containers" : "TypeScript through tsx's loader, as `npm start` runs them"}; WORKER_CONCURRENCY=${loadConfig(env).workerConcurrency}) on this machine; clients in the benchmark process (${values.client === "http" ? "node:http with a hand-built multipart body" : "fetch with FormData"}), each posting with \`Prefer: wait=30\` (the job comes back in the answer: what a client that wants the result soonest does); at one client, half of each round posts, then follows the job's event stream until \`completed\` (the way before \`Prefer: wait\`, and what a client that shows progress does), its own row; ${seconds} s per level. In-process runPipeline on the same request, the model loaded as the worker loads it: median ${median(inproc).toFixed(1)} ms (p99 ${percentile(inproc, 99).toFixed(1)} ms, ${inproc.length} runs, ${(inprocCpu.ms / inprocCpu.runs).toFixed(1)} CPU ms per run${levels.includes(1) ? `; ${IN_PROCESS_PER_ROUND} runs after each tenth of the one-client level` : ""}). "Added" and "x in-process" compare each p50 with that median.`,
    "",
    "| concurrent clients | jobs | jobs per second | p50 ms | p99 ms | added over in-process (p50) ms | x in-process (p50) | CPU ms per job: API / worker / Redis / clients | API event-loop delay max ms |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows,
    ...parts,
  );
  if (workerCounts.length > 0) {
    const cores = os.availableParallelism();
    lines.push(
      "",
      `Throughput against worker processes (each WORKER_CONCURRENCY=1, one inference thread), ${scaleClients} concurrent clients, ${scaleSeconds} s each, the same API process; CPU = user + system time of the API and worker processes over the run, per job. This machine has ${cores} cores, shared by the clients, Redis, the API and the workers.`,
      "",
      "| worker processes | jobs | jobs per second | p50 ms | p99 ms | CPU ms per job (API + workers) | jobs per second the cores allow at that CPU |",
      "|---|---|---|---|---|---|---|",
    );
    for (const w of workerCounts) {
      while (workers.length < w) workers.push(start("services/worker/main.ts", env));
      await waitWorkers(base, w);
      await runClients(base, scaleClients, 2); // warm-up at this size
      const pids = [api, ...workers.slice(0, w)].map((p) => p.pid);
      const cpu0 = pids.reduce<number>((s, p) => s + cpuMs(p), 0);
      const { lat, wall } = await runClients(base, scaleClients, scaleSeconds);
      const perJob = (pids.reduce<number>((s, p) => s + cpuMs(p), 0) - cpu0) / lat.length;
      lines.push(
        `| ${w} | ${lat.length} | ${(lat.length / wall).toFixed(2)} | ${median(lat).toFixed(1)} | ${percentile(lat, 99).toFixed(1)} | ${perJob.toFixed(1)} | ${((cores * 1000) / perJob).toFixed(1)} |`,
      );
      if (!values.markdown) process.stderr.write(`${lines.at(-1)}\n`);
    }
  }
} finally {
  api.kill("SIGTERM");
  for (const w of workers) w.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 1500));
  if (privateRedis) await privateRedis.kill();
  else await cleanupPrefix(prefix);
  await fs.rm(dataDir, { recursive: true, force: true });
}
process.stdout.write(`${lines.join("\n")}\n`);
process.exit(0);

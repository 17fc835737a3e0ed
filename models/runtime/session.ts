/**
 * onnxruntime-node session creation with execution-provider selection.
 *
 * `ORT_EXECUTION_PROVIDERS` is a comma list (`cpu` default; `cuda`, `cuda,cpu`, ...). When a GPU provider
 * cannot be created (its shared libraries are missing, as on a CPU install of onnxruntime-node), the
 * session falls back to CPU and a warning is logged once per model file; the fallback is recorded on the
 * returned handle so that health checks and results can report the provider really used.
 */
import ort from "onnxruntime-node";
import { runtimeSettings } from "../../common/config.ts";

export type ExecutionProvider = "cpu" | "cuda" | "tensorrt" | "webgpu";
const KNOWN: readonly ExecutionProvider[] = ["cpu", "cuda", "tensorrt", "webgpu"];

export interface SessionHandle {
  session: ort.InferenceSession;
  path: string;
  /** Providers asked for, in order. */
  requested: ExecutionProvider[];
  /** Providers the session was created with (CPU after a fallback). */
  providers: ExecutionProvider[];
  /** Why a fallback happened, when it did. */
  fallback?: string;
}

export type WarnFn = (message: string) => void;

const defaultWarn: WarnFn = (message) => process.stderr.write(`[vtc] warning: ${message}\n`);

/** Parses `ORT_EXECUTION_PROVIDERS` (or a given string). Unknown names are an error, not ignored. */
export function parseProviders(raw: string | undefined = runtimeSettings().providers): ExecutionProvider[] {
  if (raw === undefined || raw.trim() === "") return ["cpu"];
  const names = raw
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s.length > 0);
  for (const n of names) {
    if (!KNOWN.includes(n as ExecutionProvider)) {
      throw new Error(`ORT_EXECUTION_PROVIDERS: unknown provider "${n}" (known: ${KNOWN.join(", ")})`);
    }
  }
  const out = [...new Set(names as ExecutionProvider[])];
  if (!out.includes("cpu")) out.push("cpu");
  return out;
}

export interface CreateSessionOptions {
  providers?: ExecutionProvider[];
  /** Intra-op threads (default: onnxruntime's choice; `VTC_ORT_THREADS` overrides). */
  intraOpNumThreads?: number;
  /**
   * Whether idle intra-op threads busy-wait for the next operator (onnxruntime's default: yes;
   * `VTC_ORT_SPINNING=0|1` overrides). Spinning buys a little latency for a process that owns its
   * cores; where inference shares them (the service's worker next to the API, Redis and the event
   * loops), the spinning threads take CPU the others are waiting for.
   */
  allowSpinning?: boolean;
  warn?: WarnFn;
}

export async function createSession(path: string, opts: CreateSessionOptions = {}): Promise<SessionHandle> {
  const requested = opts.providers ?? parseProviders();
  const warn = opts.warn ?? defaultWarn;
  const settings = runtimeSettings();
  const threads = opts.intraOpNumThreads ?? settings.threads;
  const spinning = settings.spinning ?? opts.allowSpinning;
  const spin = spinning === undefined ? undefined : spinning ? "1" : "0";
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: "all",
    ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
    // Session config entries (onnxruntime_session_options_config_keys.h): session.intra_op.allow_spinning, ...
    ...(spin
      ? { extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } } }
      : {}),
  };
  const gpu = requested.filter((p) => p !== "cpu");
  if (gpu.length > 0) {
    try {
      const session = await ort.InferenceSession.create(path, {
        ...base,
        executionProviders: requested,
        // The native loader prints its own error when a provider library is missing; ours says it better.
        logSeverityLevel: 4,
      });
      return { session, path, requested, providers: requested };
    } catch (err) {
      const reason = (err as Error).message;
      warn(
        `execution provider ${gpu.join(",")} unavailable for ${path} (${reason}); falling back to CPU. ` +
          "On a GPU host fetch the CUDA provider once with " +
          "`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install` (README, Install notes).",
      );
      const session = await ort.InferenceSession.create(path, { ...base, executionProviders: ["cpu"] });
      return { session, path, requested, providers: ["cpu"], fallback: reason };
    }
  }
  const session = await ort.InferenceSession.create(path, { ...base, executionProviders: ["cpu"] });
  return { session, path, requested, providers: ["cpu"] };
}

export { ort };

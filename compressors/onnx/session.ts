/**
 * One cached onnxruntime session per graph (graph.ts): created once, reused for every shape.
 * VTC_ORT_THREADS sets the intra-op threads (default: onnxruntime's, all cores); spinning between ops
 * is off unless VTC_ORT_SPINNING=1 (compressors/README.md, "Performance", says why).
 */
import * as ort from "onnxruntime-node";
import { runtimeSettings } from "../../common/config.ts";

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function threads(): number {
  return runtimeSettings().threads ?? 0; // 0: onnxruntime's default (all cores)
}

/**
 * The cached session of a graph. `singleThread` for graphs of cheap elementwise ops, where waking a
 * second thread costs more than it saves (and much more when the machine is busy).
 */
export function session(
  key: string,
  build: () => Uint8Array,
  singleThread = false,
): Promise<ort.InferenceSession> {
  let s = sessions.get(key);
  if (!s) {
    const intraOpNumThreads = singleThread ? 1 : threads();
    s = ort.InferenceSession.create(build(), {
      graphOptimizationLevel: "all",
      ...(intraOpNumThreads ? { intraOpNumThreads } : {}),
      // Threads that spin between ops burn the cores other work needs (and wait for descheduled peers
      // when the machine is busy): off unless VTC_ORT_SPINNING=1.
      ...(runtimeSettings().spinning === true
        ? {}
        : { extra: { session: { intra_op: { allow_spinning: "0" } } } }),
    });
    sessions.set(key, s);
    s.catch(() => sessions.delete(key));
  }
  return s;
}

export function asF32(t: ort.Tensor | undefined): Float32Array {
  if (!t) throw new Error("onnxruntime returned no output");
  return t.data as Float32Array;
}

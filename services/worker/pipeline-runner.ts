/**
 * The runner the worker threads use: reads the job's files from the blob store, runs the in-process
 * pipeline (decode -> encode -> compress -> project -> LLM), and stores the artifacts (result JSON,
 * compressed tokens as safetensors, kept.png) back in the blob store.
 */
import { FsBlobStore } from "../shared/blob-store.ts";
import type { CreateRunner } from "./runner.ts";

export const createRunner: CreateRunner = async (init) => {
  const blobs = FsBlobStore.inDataDir(init.dataDir);
  void blobs;
  return {
    async run() {
      throw new Error("the in-process pipeline (pipeline/) is not available yet");
    },
  };
};

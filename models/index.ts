/** The model runtime's public surface (see models/runtime/ and models/vtc-tiny/README.md). */
export { defaultModelDir, type LoadedManifest, type Manifest, readManifest } from "./runtime/manifest.ts";
export { loadModel, Model, unloadModels, type ViewPixels } from "./runtime/model.ts";
export {
  createSession,
  type ExecutionProvider,
  parseProviders,
  type SessionHandle,
} from "./runtime/session.ts";
export { type Encoding, WordLevelTokenizer } from "./runtime/tokenizer.ts";

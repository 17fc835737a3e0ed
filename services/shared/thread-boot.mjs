// Thread bootstrap: registers tsx's loader in this thread (loaders do not cross into worker
// threads), then loads the TypeScript thread entry.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);

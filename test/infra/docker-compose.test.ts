/** Docker cannot run here, so the compose file's promises are checked by parsing it. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadBlobStoreConfig } from "../../services/shared/blob-store-config.ts";

// `merge`: the services share their blob-store environment through a YAML merge key (<<), as compose reads it.
const compose = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8"), {
  merge: true,
});
const services = compose.services;

describe("docker-compose.yml", () => {
  it("has redis, api and worker (and minio, worker-gpu in profiles)", () => {
    expect(Object.keys(services).sort()).toEqual(["api", "minio", "redis", "worker", "worker-gpu"]);
  });

  it("runs Redis 7 with AOF, noeviction and a healthcheck", () => {
    const redis = services.redis;
    expect(redis.image).toMatch(/^redis:7/);
    const cmd = redis.command.join(" ");
    expect(cmd).toMatch(/--appendonly yes/);
    expect(cmd).toMatch(/--maxmemory-policy noeviction/);
    expect(redis.healthcheck.test.join(" ")).toMatch(/redis-cli ping/);
  });

  it("api and worker wait for a healthy Redis and share the blob volume", () => {
    for (const name of ["api", "worker", "worker-gpu"]) {
      const s = services[name];
      expect(s.depends_on.redis.condition).toBe("service_healthy");
      expect(s.volumes.some((v: string) => v.startsWith("blobs:"))).toBe(true);
      expect(s.environment.REDIS_URL).toBe("redis://redis:6379");
      // npm start's local Redis stays off in containers: compose runs the Redis service.
      expect(s.environment.VTC_IN_CONTAINER).toBe("1");
    }
    expect(Object.keys(compose.volumes)).toContain("blobs");
  });

  it("the default worker needs no GPU; worker-gpu (profile gpu) reserves an NVIDIA GPU", () => {
    // `docker compose up` must work on a machine without a GPU.
    expect(services.worker.deploy).toBeUndefined();
    expect(services.worker.environment.ORT_EXECUTION_PROVIDERS).toBeUndefined();
    const g = services["worker-gpu"];
    expect(g.profiles).toEqual(["gpu"]);
    expect(g.environment.ORT_EXECUTION_PROVIDERS).toBe("cuda");
    const devices = g.deploy.resources.reservations.devices;
    expect(devices[0].driver).toBe("nvidia");
    expect(devices[0].capabilities).toContain("gpu");
  });

  it("workers can be scaled", () => {
    // --scale fails with a fixed container name or a fixed host port.
    for (const name of ["worker", "worker-gpu"]) {
      expect(services[name].container_name).toBeUndefined();
      expect(services[name].ports).toBeUndefined();
    }
  });

  it("api and workers run the compiled build with node under an init, restart, and are health-checked", () => {
    const entry = { api: "dist/services/api/main.js", worker: "dist/services/worker/main.js" };
    for (const name of ["api", "worker", "worker-gpu"]) {
      const s = services[name];
      // Not npm (it does not pass SIGTERM on) nor tsx (a development tool).
      expect(s.command).toEqual(["node", name === "api" ? entry.api : entry.worker]);
      expect(s.init).toBe(true);
      expect(s.restart).toBe("unless-stopped");
      expect(s.healthcheck.test.slice(0, 3)).toEqual(["CMD", "node", "-e"]);
    }
    expect(services.api.healthcheck.test[3]).toContain("http://127.0.0.1:3000/readyz");
    for (const name of ["worker", "worker-gpu"]) {
      expect(services[name].healthcheck.test[3]).toContain("http://127.0.0.1:9464/metrics");
      // compose's default 10 s would SIGKILL a worker still inside its 30 s shutdown bound.
      expect(seconds(services[name].stop_grace_period)).toBeGreaterThan(30);
    }
    expect(services.redis.restart).toBe("unless-stopped");
  });

  it("the images: CPU from Dockerfile, the GPU worker from Dockerfile.gpu on a CUDA 12 + cuDNN runtime", () => {
    expect(services.api.build).toBe(".");
    expect(services.worker.build).toBe(".");
    expect(services["worker-gpu"].build).toEqual({ context: ".", dockerfile: "Dockerfile.gpu" });
    const cpu = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8");
    const gpu = readFileSync(new URL("../../Dockerfile.gpu", import.meta.url), "utf8");
    for (const file of [cpu, gpu]) {
      expect(file).toMatch(/RUN npm run build && npm prune --omit=dev/);
      expect(file).toMatch(/COPY --from=build \/app\/dist \.\/dist/);
      expect(file).toMatch(/VTC_IN_CONTAINER=1/);
      expect(file).not.toMatch(/CMD \["npm"/);
    }
    expect(cpu).toMatch(/ONNXRUNTIME_NODE_INSTALL=skip npm ci/);
    expect(cpu).toMatch(/CMD \["node", "dist\/services\/api\/main\.js"\]/);
    expect(gpu).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci/);
    expect(gpu).toMatch(/ARG CUDA_IMAGE=nvidia\/cuda:12\.[0-9.]+-cudnn-runtime-/);
    expect(gpu).toMatch(/CMD \["node", "dist\/services\/worker\/main\.js"\]/);
  });

  it("minio (profile s3) is healthy-checked and keeps its data in a volume", () => {
    const m = services.minio;
    expect(m.profiles).toEqual(["s3"]);
    expect(m.command.slice(0, 2)).toEqual(["server", "/data"]);
    expect(m.healthcheck.test.join(" ")).toMatch(/mc ready local/);
    expect(m.volumes).toContain("minio-data:/data");
    expect(Object.keys(compose.volumes)).toContain("minio-data");
  });

  it("api and workers keep the volume by default and, with VTC_BLOB_STORE=s3, use MinIO with its own credentials", () => {
    const minioEnv = interpolate(services.minio.environment, {});
    for (const name of ["api", "worker", "worker-gpu"]) {
      const s = services[name];
      // Waits for MinIO only when the profile runs it.
      expect(s.depends_on.minio).toEqual({ condition: "service_healthy", required: false });
      expect(loadBlobStoreConfig(interpolate(s.environment, {}))).toEqual({ kind: "fs" });
      const env = interpolate(s.environment, { VTC_BLOB_STORE: "s3" });
      expect(loadBlobStoreConfig(env)).toEqual({
        kind: "s3",
        bucket: "vtc",
        prefix: "blobs/",
        region: "us-east-1",
        endpoint: "http://minio:9000",
        forcePathStyle: true,
        createBucket: name === "api",
      });
      expect(env.AWS_ACCESS_KEY_ID).toBe(minioEnv.MINIO_ROOT_USER);
      expect(env.AWS_SECRET_ACCESS_KEY).toBe(minioEnv.MINIO_ROOT_PASSWORD);
      // Credentials given to compose win over MinIO's defaults; VTC_S3_ENDPOINT= (empty) means AWS S3.
      const aws = interpolate(s.environment, {
        VTC_BLOB_STORE: "s3",
        VTC_S3_ENDPOINT: "",
        AWS_ACCESS_KEY_ID: "AKIA-TEST",
      });
      expect(aws.AWS_ACCESS_KEY_ID).toBe("AKIA-TEST");
      expect(loadBlobStoreConfig(aws)).not.toHaveProperty("endpoint");
    }
  });
});

/** A compose duration ("45s", "1m30s") in seconds. */
function seconds(duration: string): number {
  let total = 0;
  for (const [, n, unit] of duration.matchAll(/(\d+)(h|m|s)/g))
    total += Number(n) * { h: 3600, m: 60, s: 1 }[unit]!;
  return total;
}

/**
 * Compose's variable substitution for what the file uses: `${NAME}`, `${NAME:-default}` (unset or
 * empty) and `${NAME-default}` (unset), defaults possibly nested.
 */
function interpolate(env: Record<string, string>, shell: Record<string, string>): Record<string, string> {
  const expand = (text: string): string => {
    let out = "";
    let i = 0;
    while (i < text.length) {
      if (!text.startsWith("${", i)) {
        out += text[i++];
        continue;
      }
      let depth = 0;
      let j = i;
      for (; j < text.length; j++) {
        if (text.startsWith("${", j)) {
          depth++;
          j++;
        } else if (text[j] === "}") {
          depth--;
          if (depth === 0) break;
        }
      }
      const body = text.slice(i + 2, j);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?$/s.exec(body);
      if (!m) throw new Error(`unsupported substitution \${${body}}`);
      const [, name, op, fallback = ""] = m;
      const value = shell[name];
      const useDefault = op === ":-" ? !value : op === "-" ? value === undefined : false;
      out += useDefault ? expand(fallback) : (value ?? "");
      i = j + 1;
    }
    return out;
  };
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, expand(String(v))]));
}

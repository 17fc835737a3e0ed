/** Docker cannot run here, so the compose file's promises are checked by parsing it. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const compose = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8"));
const services = compose.services;

describe("docker-compose.yml", () => {
  it("has redis, api and worker", () => {
    expect(Object.keys(services).sort()).toEqual(["api", "redis", "worker", "worker-gpu"]);
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
});

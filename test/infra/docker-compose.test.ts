/** Docker cannot run here, so the compose file's promises are checked by parsing it. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const compose = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8"));
const services = compose.services;

describe("docker-compose.yml", () => {
  it("has redis, api and worker", () => {
    expect(Object.keys(services).sort()).toEqual(["api", "redis", "worker"]);
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
    for (const name of ["api", "worker"]) {
      const s = services[name];
      expect(s.depends_on.redis.condition).toBe("service_healthy");
      expect(s.volumes.some((v: string) => v.startsWith("blobs:"))).toBe(true);
      expect(s.environment.REDIS_URL).toBe("redis://redis:6379");
    }
    expect(Object.keys(compose.volumes)).toContain("blobs");
  });

  it("the worker reserves an NVIDIA GPU and can be scaled", () => {
    const w = services.worker;
    const devices = w.deploy.resources.reservations.devices;
    expect(devices[0].driver).toBe("nvidia");
    expect(devices[0].capabilities).toContain("gpu");
    // --scale fails with a fixed container name or a fixed host port.
    expect(w.container_name).toBeUndefined();
    expect(w.ports).toBeUndefined();
  });
});

/**
 * A prom-client registry with the default process and Node.js metrics under their standard names
 * (no prefix), less the three gauges prom-client names with a counter's `_total` suffix
 * (`nodejs_active_{handles,requests,resources}_total`), which `promtool check metrics` rejects;
 * their per-type gauges without the suffix stay (sum over `type` for the total).
 */
import { collectDefaultMetrics, Registry } from "prom-client";

const NOT_COUNTERS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

export function registryWithDefaults(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of NOT_COUNTERS) registry.removeSingleMetric(name);
  return registry;
}

// Dependency probes for /health/ready and /health/status. Each probe is bounded by HEALTH_CHECK_TIMEOUT_MS.
import { getHeapStatistics } from "node:v8";

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function probe(name, ms, fn) {
  const started = performance.now();
  try {
    await withTimeout(fn(), ms, name);
    return { status: "up", responseTime: Math.round(performance.now() - started), error: null };
  } catch (error) {
    return { status: "down", responseTime: Math.round(performance.now() - started), error: error.message };
  }
}

export function checkDatabase(prisma, ms) {
  return probe("database", ms, () => prisma.$queryRaw`SELECT 1`);
}

export function checkRedis(redis, ms) {
  return probe("redis", ms, async () => {
    if (!redis.isReady) throw new Error("not connected");
    const key = `health:probe:${process.pid}`;
    const value = String(Date.now());
    await redis.set(key, value, { PX: 10_000 });
    const read = await redis.get(key);
    if (read !== value) throw new Error("SET/GET round trip returned a different value");
  });
}

// Degraded above 90 % of the V8 heap limit; memory never makes the service unhealthy on its own.
export function checkMemory() {
  const usage = process.memoryUsage();
  const limit = getHeapStatistics().heap_size_limit;
  const ratio = usage.heapUsed / limit;
  return {
    status: ratio > 0.9 ? "degraded" : "up",
    responseTime: 0,
    error: ratio > 0.9 ? `heap at ${Math.round(ratio * 100)} % of its limit` : null,
    heapUsed: usage.heapUsed,
    heapLimit: limit,
    rss: usage.rss,
  };
}

// Postgres down -> unhealthy (nothing works without it). Redis down -> degraded: quotes are still served from
// Postgres, only the cache/session layer is missing. Readiness is stricter: it needs both.
export function overallStatus(checks) {
  if (checks.database.status === "down") return "unhealthy";
  if (Object.values(checks).some((check) => check.status !== "up")) return "degraded";
  return "healthy";
}

// The Redis client: never crashes the process when Redis is down, reconnects with capped exponential backoff.
import { createClient } from "redis";

export function createRedis(target, log) {
  const client = createClient({
    socket: {
      host: target.host,
      port: target.port,
      tls: target.tls,
      servername: target.tls ? target.host : undefined,
      connectTimeout: 2000,
      // 100 ms, 200 ms, 400 ms ... capped at 2 s; never gives up.
      reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000),
    },
    username: target.username,
    password: target.password,
    database: target.database,
    // Fail commands at once while disconnected instead of queueing them: readiness must see "down", not hang.
    disableOfflineQueue: true,
  });
  let lastError = "";
  client.on("error", (error) => {
    // Without an "error" listener node-redis would throw; log each distinct error once per outage.
    if (error.message !== lastError) log.warn("redis error", { error: error.message });
    lastError = error.message;
  });
  client.on("ready", () => {
    lastError = "";
    log.info("redis ready", { host: target.host, port: target.port, db: target.database, tls: target.tls });
  });
  client.connect().catch((error) => log.warn("redis connect failed", { error: error.message }));
  return client;
}

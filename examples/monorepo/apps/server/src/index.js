// Entry point: wire config, Prisma, Redis and the HTTP server; shut down quickly and cleanly on SIGTERM/SIGINT.
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";
import { createPrisma } from "./db.js";
import { createLogger } from "./log.js";
import { createRedis } from "./redis.js";

// `docker compose down/stop` waits 10 s before SIGKILL; we aim to be gone in well under a second.
const SHUTDOWN_GRACE_MS = 1000;

const { config, problems } = loadConfig();
const log = createLogger(config.logLevel);
if (problems.length) {
  for (const problem of problems) log.error("configuration problem", { problem });
  process.exit(1);
}
if (!config.secrets.jwt || !config.secrets.session) {
  log.warn("JWT_SECRET or SESSION_SECRET is empty: fine for local development, refused in production");
}
log.info(config.sentryDsn ? "error reporting enabled" : "error reporting disabled (SENTRY_DSN is empty)");

const prisma = createPrisma(config.databaseUrl);
const redis = createRedis(config.redis, log);
const app = createApp({ config, prisma, redis, log });

const server = app.listen(config.port, () => {
  log.info("listening", { port: config.port, env: config.nodeEnv, version: config.version });
});
server.on("error", (error) => {
  log.error("http server failed", { error: error.message });
  process.exit(1);
});

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log.info("shutting down", { signal });
  setTimeout(() => {
    log.warn("shutdown took too long, exiting anyway");
    process.exit(1);
  }, SHUTDOWN_GRACE_MS).unref();
  const closed = new Promise((resolve) => server.close(resolve));
  server.closeIdleConnections();
  const results = await Promise.allSettled([
    closed,
    prisma.$disconnect(),
    redis.isOpen ? redis.disconnect() : Promise.resolve(),
  ]);
  for (const result of results) {
    if (result.status === "rejected") log.warn("shutdown step failed", { error: String(result.reason) });
  }
  process.exit(0);
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

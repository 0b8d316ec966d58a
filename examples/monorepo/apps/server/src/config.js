// Every environment variable the server reads, in one place (documented in .env.template).
import { readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

function int(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number.parseInt(raw, 10);
  if (!Number.isFinite(value)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return value;
}

function list(raw) {
  return (raw ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}

// REDIS_URL wins when it is set (redis:// or rediss:// for TLS; user, password and /db in the URL are honoured);
// REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_DB are only the fallback for an empty REDIS_URL.
export function redisTarget(env) {
  if (env.REDIS_URL) {
    const url = new URL(env.REDIS_URL);
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
      throw new Error(`REDIS_URL must start with redis:// or rediss://, got ${url.protocol}//`);
    }
    const db = url.pathname.replace(/^\//, "");
    if (db !== "" && !/^\d+$/.test(db)) throw new Error(`REDIS_URL database must be a number, got /${db}`);
    return {
      host: url.hostname,
      port: url.port ? Number(url.port) : 6379,
      username: decodeURIComponent(url.username) || undefined,
      password: decodeURIComponent(url.password) || undefined,
      database: db === "" ? 0 : Number(db),
      tls: url.protocol === "rediss:",
    };
  }
  return {
    host: env.REDIS_HOST || "localhost",
    port: int(env, "REDIS_PORT", 6379),
    username: undefined,
    password: env.REDIS_PASSWORD || undefined,
    database: int(env, "REDIS_DB", 0),
    tls: false,
  };
}

export function loadConfig(env = process.env) {
  const nodeEnv = env.NODE_ENV || "development";
  const config = {
    nodeEnv,
    version: pkg.version,
    port: int(env, "PORT", 3000),
    corsOrigins: list(env.CORS_ORIGINS),
    motto: env.APP_MOTTO || "",
    logLevel: env.LOG_LEVEL || "info",
    databaseUrl: env.DATABASE_URL || "",
    redis: redisTarget(env),
    healthCheckTimeoutMs: int(env, "HEALTH_CHECK_TIMEOUT_MS", 1000),
    secrets: {
      jwt: env.JWT_SECRET || "",
      jwtRefresh: env.JWT_REFRESH_SECRET || "",
      session: env.SESSION_SECRET || "",
    },
    sentryDsn: env.SENTRY_DSN || "",
  };
  const problems = [];
  if (!config.databaseUrl) problems.push("DATABASE_URL is empty");
  if (nodeEnv === "production") {
    if (!config.secrets.jwt) problems.push("JWT_SECRET is empty");
    if (!config.secrets.session) problems.push("SESSION_SECRET is empty");
    if (config.secrets.jwtRefresh === "changeme") problems.push("JWT_REFRESH_SECRET is still the placeholder");
  }
  return { config, problems };
}

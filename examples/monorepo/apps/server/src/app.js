// The Express application: health endpoints and the quotes resource.
import express from "express";
import { checkDatabase, checkMemory, checkRedis, overallStatus } from "./health.js";
import { enqueue } from "./jobs.js";

const MAX_LIMIT = 100;

function cors(origins) {
  return (req, res, next) => {
    const origin = req.get("origin");
    if (origin && origins.includes(origin)) {
      res.set("Access-Control-Allow-Origin", origin);
      res.set("Vary", "Origin");
      res.set("Access-Control-Allow-Headers", "Content-Type, Authorization");
      res.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    }
    if (req.method === "OPTIONS") return res.sendStatus(204);
    return next();
  };
}

function quoteInput(body) {
  const errors = [];
  const { author, text, source, tags } = body ?? {};
  if (typeof author !== "string" || author.trim() === "") errors.push("author must be a non-empty string");
  if (typeof text !== "string" || text.trim() === "") errors.push("text must be a non-empty string");
  if (source !== undefined && source !== null && typeof source !== "string") errors.push("source must be a string");
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((tag) => typeof tag === "string"))) {
    errors.push("tags must be an array of strings");
  }
  if (errors.length) return { errors };
  return { data: { author: author.trim(), text: text.trim(), source: source ?? null, tags: tags ?? [] } };
}

export function createApp({ config, prisma, redis, log }) {
  const app = express();
  const started = Date.now();
  const timeout = config.healthCheckTimeoutMs;

  app.disable("x-powered-by");
  app.use(cors(config.corsOrigins));
  app.use(express.json({ limit: "16kb" }));

  app.get("/", (req, res) => {
    res.json({ name: "quotes-api", version: config.version, motto: config.motto });
  });

  // Liveness: answers whenever the process runs; never touches Postgres or Redis.
  app.get("/health", (req, res) => {
    res.json({ status: "ok", timestamp: new Date().toISOString() });
  });

  // Readiness: both Postgres (SELECT 1) and Redis (SET/GET) must answer within the timeout.
  app.get("/health/ready", async (req, res) => {
    const [database, redisCheck] = await Promise.all([checkDatabase(prisma, timeout), checkRedis(redis, timeout)]);
    const ready = database.status === "up" && redisCheck.status === "up";
    if (ready) return res.json({ ready: true });
    return res.status(503).json({ ready: false, checks: { database, redis: redisCheck } });
  });

  app.get("/health/status", async (req, res) => {
    const [database, redisCheck] = await Promise.all([checkDatabase(prisma, timeout), checkRedis(redis, timeout)]);
    const checks = { database, redis: redisCheck, memory: checkMemory() };
    const status = overallStatus(checks);
    res.status(status === "unhealthy" ? 503 : 200).json({
      status,
      timestamp: new Date().toISOString(),
      uptime: Math.round((Date.now() - started) / 1000),
      version: config.version,
      checks,
    });
  });

  app.get("/v1/quotes", async (req, res) => {
    const limit = Math.min(Math.max(Number.parseInt(req.query.limit ?? "50", 10) || 50, 1), MAX_LIMIT);
    const quotes = await prisma.quote.findMany({ orderBy: { id: "desc" }, take: limit });
    res.json({ quotes });
  });

  app.get("/v1/quotes/:id", async (req, res) => {
    const id = Number.parseInt(req.params.id, 10);
    if (!Number.isSafeInteger(id) || id < 1) return res.status(400).json({ error: "id must be a positive integer" });
    const quote = await prisma.quote.findUnique({ where: { id } });
    if (!quote) return res.status(404).json({ error: `quote ${id} not found` });
    return res.json(quote);
  });

  app.post("/v1/quotes", async (req, res) => {
    const { data, errors } = quoteInput(req.body);
    if (errors) return res.status(400).json({ error: "invalid quote", details: errors });
    try {
      const quote = await prisma.quote.create({ data });
      // The worker (src/worker.js) counts its words; the answer does not wait for it.
      await enqueue(redis, { type: "quote.created", id: quote.id, text: quote.text }, log);
      return res.status(201).location(`/v1/quotes/${quote.id}`).json(quote);
    } catch (error) {
      if (error?.code === "P2002") return res.status(409).json({ error: "this author already has this quote" });
      throw error;
    }
  });

  app.use((req, res) => res.status(404).json({ error: `no route for ${req.method} ${req.path}` }));

  // Express 5 forwards rejected promises from async handlers here.
  app.use((error, req, res, next) => {
    if (res.headersSent) return next(error);
    if (error?.type === "entity.parse.failed") return res.status(400).json({ error: "body is not valid JSON" });
    log.error("request failed", { method: req.method, path: req.path, error: error?.message });
    return res.status(500).json({ error: "internal error" });
  });

  return app;
}

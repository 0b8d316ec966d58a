// The background worker (`npm run start:worker`): takes the jobs the server pushes onto a Redis list (quotes:jobs)
// and records each result (quotes:done). Same image, same .env as the server; stops at once on SIGTERM/SIGINT.
import { loadConfig } from "./config.js";
import { countWords, DONE_KEY, JOBS_KEY } from "./jobs.js";
import { createLogger } from "./log.js";
import { createRedis } from "./redis.js";

const POLL_SECONDS = 1; // BRPOP's timeout: how often the loop looks at `stopping` while the queue is empty
const RETRY_MS = 500; // after a failed BRPOP (Redis down): the client reconnects by itself meanwhile

const { config } = loadConfig();
const log = createLogger(config.logLevel);
const redis = createRedis(config.redis, log);
let stopping = false;

async function handle(raw) {
  let job;
  try {
    job = JSON.parse(raw);
  } catch {
    log.warn("job is not JSON, dropped", { raw: raw.slice(0, 200) });
    return;
  }
  const words = countWords(job);
  await redis.hSet(DONE_KEY, String(job.id), String(words));
  log.info("job done", { type: job.type, id: job.id, words });
}

async function loop() {
  log.info("worker started", { queue: JOBS_KEY });
  while (!stopping) {
    try {
      const next = await redis.brPop(JOBS_KEY, POLL_SECONDS);
      if (next) await handle(next.element);
    } catch (error) {
      if (stopping) break;
      log.warn("queue read failed", { error: error.message });
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}

function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log.info("worker stopping", { signal });
  (redis.isOpen ? redis.disconnect() : Promise.resolve()).finally(() => process.exit(0));
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

loop().then(
  () => process.exit(0),
  (error) => {
    log.error("worker failed", { error: error.message });
    process.exit(1);
  },
);

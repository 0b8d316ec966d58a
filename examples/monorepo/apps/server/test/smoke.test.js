// Smoke test against a running stack (CI runs it as `devenv run -- npm test`).
// Reads SERVER_URL (default http://localhost:3000), DATABASE_URL and REDIS_URL from the environment.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createClient } from "redis";

const SERVER_URL = (process.env.SERVER_URL || `http://localhost:${process.env.PORT || 3000}`).replace(/\/$/, "");
const { DATABASE_URL, REDIS_URL } = process.env;

async function waitForReady(deadlineMs = 15_000) {
  const deadline = Date.now() + deadlineMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${SERVER_URL}/health/ready`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status} ${await res.text()}`;
    } catch (error) {
      last = error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.fail(`${SERVER_URL}/health/ready never returned 200 (last: ${last})`);
}

let db;
let redis;

before(async () => {
  assert.ok(DATABASE_URL, "DATABASE_URL must be set");
  assert.ok(REDIS_URL, "REDIS_URL must be set");
  db = new pg.Client({ connectionString: DATABASE_URL });
  await db.connect();
  redis = createClient({ url: REDIS_URL });
  redis.on("error", () => {});
  await redis.connect();
  await waitForReady();
});

after(async () => {
  await db?.end();
  await redis?.quit();
});

test("liveness and readiness answer 200", async () => {
  const live = await fetch(`${SERVER_URL}/health`);
  assert.equal(live.status, 200);
  assert.equal((await live.json()).status, "ok");
  const ready = await fetch(`${SERVER_URL}/health/ready`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true });
});

test("status reports healthy with every check up", async () => {
  const res = await fetch(`${SERVER_URL}/health/status`);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.status, "healthy");
  for (const name of ["database", "redis", "memory"]) assert.equal(body.checks[name].status, "up", name);
});

test("a posted quote can be read back over HTTP and is in Postgres", async () => {
  const quote = { author: "smoke test", text: `written at ${new Date().toISOString()} (${randomUUID()})` };
  const created = await fetch(`${SERVER_URL}/v1/quotes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(quote),
  });
  assert.equal(created.status, 201);
  const row = await created.json();
  assert.equal(row.text, quote.text);

  const fetched = await fetch(`${SERVER_URL}/v1/quotes/${row.id}`);
  assert.equal(fetched.status, 200);
  assert.equal((await fetched.json()).author, quote.author);

  const { rows } = await db.query("SELECT author FROM quotes WHERE id = $1", [row.id]);
  assert.deepEqual(rows, [{ author: quote.author }]);
});

test("Redis answers on REDIS_URL", async () => {
  assert.equal(await redis.ping(), "PONG");
});

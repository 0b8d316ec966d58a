// What every workers-*.test.js file checks: its database is its own while the other files run at the same time.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { workerDatabase } from "./worker-db.js";

export function workerChecks(file) {
  let db;
  before(async () => {
    db = await workerDatabase();
  });
  after(async () => {
    await db?.client.end();
  });

  test(`${file}: the worker's database is a seeded copy of its own`, async () => {
    const { rows: name } = await db.client.query("SELECT current_database() AS db");
    if (db.worker) assert.match(name[0].db, new RegExp(`_w${db.worker}$`));
    const { rows: seeded } = await db.client.query("SELECT count(*)::int AS n FROM quotes WHERE author <> 'worker'");
    assert.ok(seeded[0].n > 0, "the clone carries the seed");
    console.log(`${file}: worker ${db.worker} on ${name[0].db}`);
  });

  const alone = !process.env.DEVENV_WORKERS && "one database for all files: run it with devenv run --workers N";
  test(`${file}: rows written by the other workers meanwhile are not in it`, { skip: alone }, async () => {
    await db.client.query("INSERT INTO quotes (author, text) VALUES ('worker', $1)", [`${file} ${randomUUID()}`]);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the other files write theirs now
    const { rows } = await db.client.query("SELECT text FROM quotes WHERE author = 'worker'");
    assert.equal(rows.length, 1, `only ${file}'s own row: ${JSON.stringify(rows)}`);
  });
}

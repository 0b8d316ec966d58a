// The database of this test worker under `devenv run --workers N -- …` (or `devenv db clones N`): devenv exports
// DATABASE_URL_1..N (one copy of the migrated, seeded template each) and DEVENV_WORKERS=N.
//
// - jest sets JEST_WORKER_ID (1..N), vitest VITEST_POOL_ID (1..N), node's test runner NODE_TEST_WORKER_ID (1..N,
//   in releases from early 2026): the worker takes DATABASE_URL_<id>.
// - Node 20's test runner gives no id: the file claims the first clone nobody holds, with a session advisory lock
//   that it keeps until its connection closes.
// Without DEVENV_WORKERS it is DATABASE_URL (one database for everything, as before).
import pg from "pg";

const CLAIM = 4242_17; // the advisory lock key that says "this clone is taken"

export async function workerDatabase() {
  const workers = Number(process.env.DEVENV_WORKERS || 0);
  if (!workers) {
    const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await client.connect();
    return { worker: 0, client };
  }
  const id = process.env.JEST_WORKER_ID || process.env.VITEST_POOL_ID || process.env.NODE_TEST_WORKER_ID;
  if (id) {
    const worker = ((Number(id) - 1) % workers) + 1;
    const client = new pg.Client({ connectionString: process.env[`DATABASE_URL_${worker}`] });
    await client.connect();
    return { worker, client };
  }
  for (let worker = 1; worker <= workers; worker++) {
    const client = new pg.Client({ connectionString: process.env[`DATABASE_URL_${worker}`] });
    await client.connect();
    const { rows } = await client.query("SELECT pg_try_advisory_lock($1) AS mine", [CLAIM]);
    if (rows[0].mine) return { worker, client };
    await client.end();
  }
  throw new Error(`all ${workers} databases are taken: run more workers (devenv run --workers N) or fewer files at once`);
}

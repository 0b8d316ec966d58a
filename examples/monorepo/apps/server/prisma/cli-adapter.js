// Driver adapter for the Prisma CLI (migrate, db seed, status) with the JS schema engine.
//
// Why this file exists: Prisma 7 downloads a native engine and this project must work offline, so the CLI runs
// Prisma 6's wasm schema engine (`engine: "js"` in prisma.config.ts) over @prisma/adapter-pg. That path needs three
// workarounds, each marked WORKAROUND below. The server itself does not use this file (see src/db.js).
import { randomUUID } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";

// WORKAROUND 1 (prisma/orm#27403): the schema engine introspects pg_catalog, whose columns use the internal types
// `"char"` (OID 18) and `name` (OID 19). @prisma/adapter-pg has no column type for them and fails with
// "Column type 'name' could not be deserialized from the database", so every `migrate` command breaks. Both are
// plain text on the wire (pg already hands us strings), so we relabel those fields as `text` (OID 25) before the
// adapter maps field types. Only the CLI's own pools are patched; nothing global is touched.
// (Arrays of them are left alone: the introspection queries do not select any, and pg would not parse them.)
const TEXT_OID = 25;
const CATALOG_TEXT_OIDS = new Set([18, 19]); // "char", name

function relabelCatalogFields(result) {
  for (const res of Array.isArray(result) ? result : [result]) {
    for (const field of res?.fields ?? []) {
      if (CATALOG_TEXT_OIDS.has(field.dataTypeID)) field.dataTypeID = TEXT_OID;
    }
  }
  return result;
}

function patchClientQuery(client) {
  const query = client.query.bind(client);
  client.query = (...args) => {
    const last = args.length - 1;
    if (typeof args[last] === "function") {
      const callback = args[last];
      args[last] = (err, res) => callback(err, err ? res : relabelCatalogFields(res));
      return query(...args);
    }
    const ret = query(...args);
    return typeof ret?.then === "function" ? ret.then(relabelCatalogFields) : ret;
  };
}

function catalogAwarePool(config) {
  // allowExitOnIdle belongs to workaround 2: the CLI never disposes the adapter it got from prisma.config.ts, so
  // without it the idle pool connections would hold the process for pg's 10 s idle timeout after every command.
  const pool = new pg.Pool({ allowExitOnIdle: true, ...config });
  // Every client the pool creates passes through "connect" before its first query.
  pool.on("connect", patchClientQuery);
  return pool;
}

// WORKAROUND 2: the wasm schema engine schedules setTimeout()s (its async runtime's sleeps and timeouts) that are
// never cleared, so each prisma command lingers 10-60 s after it has printed its result (measured: `migrate deploy`
// 0.9 s with this, 10.8 s without). We unref exactly the timers whose caller is wasm code (a `wasm://` frame on the
// stack): they still fire while the process is alive for other reasons, but no longer keep it alive. Timers created
// by JS (Prisma's CLI code, pg) are left alone. The wasm glue looks up the global setTimeout at each call, and this
// module is loaded with prisma.config.ts before the engine starts, so the wrapper is in place in time.
function unrefWasmTimers() {
  if (globalThis.__quotesWasmTimersUnref) return;
  globalThis.__quotesWasmTimersUnref = true;
  for (const name of ["setTimeout", "setInterval"]) {
    const original = globalThis[name];
    globalThis[name] = function (...args) {
      const timer = original.apply(this, args);
      if (typeof timer?.unref === "function" && new Error().stack?.includes("wasm://")) timer.unref();
      return timer;
    };
  }
}
unrefWasmTimers();

function schemaOf(url) {
  return new URL(url).searchParams.get("schema") ?? "public";
}

// WORKAROUND 3: `migrate dev` diffs against a throw-away shadow database. PrismaPg.connectToShadowDb() would create
// one with a plain pg.Pool (without workaround 1, so introspection fails there too), drop it before closing its own
// connections ("database is being accessed by other users") and never close the maintenance connection. We create
// and drop it ourselves. SHADOW_DATABASE_URL, when set, names an existing database to use instead (it gets wiped).
// Only `migrate dev`/`migrate diff` use this; `migrate deploy` never does.
class CliAdapterFactory extends PrismaPg {
  constructor(url) {
    super(catalogAwarePool({ connectionString: url }), { schema: schemaOf(url), disposeExternalPool: true });
    this.url = url;
  }

  async connectToShadowDb() {
    const explicit = process.env.SHADOW_DATABASE_URL;
    if (explicit) {
      return new PrismaPg(catalogAwarePool({ connectionString: explicit }), {
        schema: schemaOf(explicit),
        disposeExternalPool: true,
      }).connect();
    }
    const database = `prisma_shadow_${randomUUID().replaceAll("-", "")}`;
    const admin = new pg.Client({ connectionString: this.url });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${database}"`);
    } catch (error) {
      await admin.end();
      throw error;
    }
    const shadowUrl = new URL(this.url);
    shadowUrl.pathname = `/${database}`;
    const adapter = await new PrismaPg(catalogAwarePool({ connectionString: shadowUrl.toString() }), {
      schema: schemaOf(this.url),
      disposeExternalPool: true,
    }).connect();
    const dispose = adapter.dispose.bind(adapter);
    adapter.dispose = async () => {
      try {
        await dispose(); // close the shadow pool first, or DROP DATABASE fails while it is in use
        await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    };
    return adapter;
  }
}

export function cliAdapter() {
  const url = process.env.DATABASE_URL;
  if (!url) {
    throw new Error("DATABASE_URL is not set. Hint: copy .env.template to .env, or export DATABASE_URL.");
  }
  return new CliAdapterFactory(url);
}

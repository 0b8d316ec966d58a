// Prisma CLI configuration (Prisma 6.19, offline): the wasm schema engine over @prisma/adapter-pg.
//
// `engine: "js"` runs the schema engine shipped as wasm inside the `prisma` package, so no engine binary is
// downloaded (Prisma 7 and Prisma 6's classic engine both need one). The adapter and its workarounds live in
// prisma/cli-adapter.js. Prisma does not read .env when a config file exists: DATABASE_URL must be in the
// environment (devenv passes it), even for `prisma generate`, because schema.prisma references it.
import { defineConfig } from "prisma/config";
import { cliAdapter } from "./prisma/cli-adapter.js";

if (!process.env.DATABASE_URL) {
  // Without it Prisma cannot read schema.prisma's generator settings and falls back to downloading a native query
  // engine, which fails offline with a confusing network error; say what is actually missing.
  console.warn("prisma.config.ts: DATABASE_URL is not set; every prisma command needs it, `prisma generate` included.");
}

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  adapter: async () => cliAdapter(),
  schema: "prisma/schema.prisma",
  migrations: {
    path: "prisma/migrations",
    // `npx prisma db seed` runs this; plain node, so the runtime image needs no TypeScript tooling.
    seed: "node prisma/seed.js",
  },
});

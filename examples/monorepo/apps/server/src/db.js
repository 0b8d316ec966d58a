// Prisma Client over @prisma/adapter-pg: the query compiler runs in wasm (engineType = "client" in schema.prisma),
// so no native query engine is needed at runtime either.
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "@prisma/client";

export function createPrisma(databaseUrl, { connectionTimeoutMillis = 2000 } = {}) {
  const schema = new URL(databaseUrl).searchParams.get("schema") ?? "public";
  const adapter = new PrismaPg({ connectionString: databaseUrl, connectionTimeoutMillis, max: 10 }, { schema });
  return new PrismaClient({ adapter });
}

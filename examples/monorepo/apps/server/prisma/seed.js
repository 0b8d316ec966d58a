// `npx prisma db seed` (see prisma.config.ts): three well-known quotes, upserted so the seed can run any number of
// times without duplicates (the unique index on author + text comes from migration 2).
import { createPrisma } from "../src/db.js";

const QUOTES = [
  { author: "Grace Hopper", text: "The most dangerous phrase in the language is: we've always done it this way.", tags: ["engineering"] },
  { author: "Donald Knuth", text: "Premature optimization is the root of all evil.", tags: ["performance"] },
  { author: "Ada Lovelace", text: "The more I study, the more insatiable do I feel my genius for it to be.", tags: ["learning"] },
];

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("DATABASE_URL is not set. Hint: export it, or run through devenv which passes it.");
  process.exit(1);
}
const prisma = createPrisma(url);
try {
  for (const quote of QUOTES) {
    await prisma.quote.upsert({
      where: { author_text: { author: quote.author, text: quote.text } },
      update: { tags: quote.tags },
      create: { ...quote, source: "seed" },
    });
  }
  console.log(`seeded ${QUOTES.length} quotes`);
} finally {
  await prisma.$disconnect();
}

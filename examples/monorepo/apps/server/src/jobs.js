// The job queue between the server and the worker: a Redis list (LPUSH by the server, BRPOP by the worker).
export const JOBS_KEY = "quotes:jobs";
// What the worker did: a hash, quote id -> the number of words in its text.
export const DONE_KEY = "quotes:done";

// Enqueue a job; a Redis outage is logged, never a failed request (the quote is in Postgres already).
export async function enqueue(redis, job, log) {
  try {
    await redis.lPush(JOBS_KEY, JSON.stringify(job));
    return true;
  } catch (error) {
    log.warn("job not enqueued", { type: job.type, error: error.message });
    return false;
  }
}

// The work itself: count the words of a new quote.
export function countWords(job) {
  return String(job.text ?? "").split(/\s+/).filter(Boolean).length;
}

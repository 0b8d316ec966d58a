// Minimal leveled JSON-line logger (LOG_LEVEL), so the example has no logging dependency.
const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 };

export function createLogger(level = "info") {
  const max = LEVELS[level] ?? LEVELS.info;
  const emit = (name) => (msg, fields = {}) => {
    if (LEVELS[name] > max) return;
    const line = JSON.stringify({ level: name, time: new Date().toISOString(), msg, ...fields });
    (name === "error" || name === "warn" ? process.stderr : process.stdout).write(`${line}\n`);
  };
  return { error: emit("error"), warn: emit("warn"), info: emit("info"), debug: emit("debug") };
}

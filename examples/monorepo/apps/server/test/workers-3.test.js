import { workerChecks } from "./worker-checks.js";

workerChecks("workers-3");

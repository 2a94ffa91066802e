import { CronExpressionParser } from "cron-parser";
import cron from "node-cron";

// Cron syntax checks shared by config validation and the autoscaler, kept in util so that config
// does not import the autoscaler.

/** True when node-cron accepts the expression (5 fields, or 6 with seconds). */
export function isValidCron(expression: string): boolean {
  return cron.validate(expression);
}

/** True when the expression can be walked backwards, as schedule floors need. */
export function isValidScheduleCron(expression: string): boolean {
  try {
    CronExpressionParser.parse(expression);
    return cron.validate(expression);
  } catch {
    return false;
  }
}

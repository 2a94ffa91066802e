import { CronExpressionParser } from "cron-parser";
import cron from "node-cron";

/**
 * Cron expressions in the configuration, validated where the configuration is read: `evaluate`
 * must be accepted by node-cron, which runs it; schedule floors must also be walkable backwards
 * by cron-parser, which finds the entry that fired last.
 */

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

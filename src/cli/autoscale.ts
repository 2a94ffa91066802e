import { RESUME_EVENT } from "../autoscale/controller.js";
import { type CommonOptions, openContext } from "./context.js";

/**
 * `doproxy autoscale resume`: after `replacements-failing` (replacements that never became
 * healthy), tells the leader to start replacing unhealthy droplets again. It writes an event the
 * leader reads at its next tick, so it works from any host that reaches the inventory.
 */
export async function resumeAutoscale(options: CommonOptions): Promise<void> {
  const ctx = await openContext(options);
  try {
    await ctx.backends.events.add(
      RESUME_EVENT,
      "an operator asked to resume replacing unhealthy droplets",
      null,
      undefined,
      Date.now(),
      "resume-requested",
    );
    process.stdout.write(
      "resume requested: the leading doproxy serve starts replacing unhealthy droplets again at its next evaluation\n" +
        "(doproxy events shows scale.resume when it has)\n",
    );
  } finally {
    await ctx.close();
  }
}

/**
 * The seeds of the CI sweep, shared by the sweep test and the mutation check
 * so that "the simulator finds each mutant within the CI sweep" means exactly
 * these seeds. `SIM_SWEEP_SEEDS=N` (and `SIM_SWEEP_FROM=S`) widen it for a
 * longer opt-in soak; the default keeps `npm test` within its time budget.
 */
export const CI_SWEEP_FROM = Number(process.env.SIM_SWEEP_FROM ?? 1);
export const CI_SWEEP_SEEDS = Number(process.env.SIM_SWEEP_SEEDS ?? 1000);

/** The seeds of the sweep, in order. */
export function sweepSeeds(): number[] {
  return Array.from({ length: CI_SWEEP_SEEDS }, (_, i) => CI_SWEEP_FROM + i);
}

/**
 * The executions API's shapes (`/api/v1/executions`), shared by the orchestrator's routes, the
 * CLI and the web UI.
 */
import { z } from 'zod';

export const ExecutionStatus = z.enum(['running', 'succeeded', 'failed']);
export type ExecutionStatus = z.infer<typeof ExecutionStatus>;

/** One run of a flow. */
export const Execution = z.object({
  id: z.string(),
  flowId: z.string(),
  flowVersion: z.number().int().nullable(),
  trigger: z.string(),
  status: ExecutionStatus,
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  durationMs: z.number().int().nullable(),
  /** Step jobs still queued or running. */
  pendingSteps: z.number().int(),
  failedSteps: z.number().int(),
  stepRuns: z.number().int(),
});
export type Execution = z.infer<typeof Execution>;

export const StepRunStatus = z.enum(['succeeded', 'failed', 'retrying', 'rebounded', 'queued']);
export type StepRunStatus = z.infer<typeof StepRunStatus>;

/** One run of one step; `idempotencyKey` (execution, node, path) is the same across retries. */
export const StepRun = z.object({
  nodeId: z.string(),
  path: z.string(),
  idempotencyKey: z.string(),
  status: StepRunStatus,
  attempt: z.number().int(),
  rebounds: z.number().int(),
  input: z.unknown(),
  output: z.unknown(),
  emitted: z.number().int(),
  error: z.string().nullable(),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number().int(),
  /** Attempts a manual retry superseded, oldest first; `attempt` above counts on from them. */
  earlierAttempts: z
    .array(
      z.object({
        attempt: z.number().int(),
        status: z.string(),
        error: z.string().nullable(),
        startedAt: z.string(),
        finishedAt: z.string(),
        durationMs: z.number().int(),
      }),
    )
    .optional(),
});
export type StepRun = z.infer<typeof StepRun>;

/** `GET /api/v1/executions/:id`. */
export const ExecutionWithSteps = Execution.extend({ steps: z.array(StepRun) });
export type ExecutionWithSteps = z.infer<typeof ExecutionWithSteps>;

/** `POST /api/v1/executions/:id/retry`. */
export const RetriedExecution = Execution.extend({ retriedSteps: z.number().int() });
export type RetriedExecution = z.infer<typeof RetriedExecution>;

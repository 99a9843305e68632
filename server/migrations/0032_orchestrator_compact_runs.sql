-- Step runs stored with their execution. An execution that a single job runs from start to end,
-- every step succeeding (webhook → transform → filter → http-request, the common case), keeps its
-- step runs as one JSON array here instead of a row each in orchestrator_step_runs: one row
-- written per execution instead of four. Each element is {n: node, p: path, s: status,
-- a: attempt, rb: rebounds, g: generation, i: input, o: output (both as JSON), em: emitted,
-- st / ft: started / finished (ISO), d: duration ms}. Such an execution has no rows in
-- orchestrator_step_runs, and it never gets any: it ended with every run final, and a later copy
-- of its trigger job finds its runs here (orchestrator.repo.ts).
ALTER TABLE orchestrator_executions ADD COLUMN runs json;

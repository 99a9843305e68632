/**
 * A worker process for bench/workers.ts: the SDK serving `bench@1.0.0` with `echo` (returns the
 * body) and `spin` (burns `spinMs` of CPU time first, then echoes), plus the command `ping`.
 * argv: <router> <credentialFile> <workerId> <concurrency> [enrolmentSecret]
 */
import { Worker } from '../../server/src/worker-sdk/index.js';

const [router, credentialFile, workerId, concurrency, secret] = process.argv.slice(2);
const spinMs = 2;

const worker = new Worker({
  routers: [router!],
  credentialFile: credentialFile!,
  workerId: workerId!,
  enrolmentSecret: secret,
  concurrency: Number(concurrency),
  components: [
    {
      name: 'bench',
      version: '1.0.0',
      functions: {
        echo: async (input) => ({ emit: [{ body: input.message.body }] }),
        // CPU time, not wall time: a worker held to a CPU share (cgroup) spends the same CPU per
        // call however often it is descheduled.
        spin: async (input) => {
          const start = process.cpuUsage();
          for (;;) {
            const used = process.cpuUsage(start);
            if (used.user + used.system >= spinMs * 1000) break;
          }
          return { emit: [{ body: input.message.body }] };
        },
      },
      commands: { ping: { schema: { type: 'object' }, handle: async (payload) => payload } },
    },
  ],
});
await worker.start();
process.stdout.write('bench worker attached\n');
process.once('SIGTERM', () => void worker.stop().then(() => process.exit(0)));
